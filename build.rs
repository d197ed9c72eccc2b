//! Release builds hand deploy/link-order/hot-functions.txt to the linker wrapper
//! (deploy/link-order/cc-ordered, named in .cargo/config.toml), which places those functions
//! side by side; other builds link as usual.

fn main() {
    const HOT: &str = "deploy/link-order/hot-functions.txt";
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        // Only release builds read the list: a new one leaves other builds alone.
        println!("cargo:rerun-if-changed={HOT}");
        if let Ok(root) = std::env::var("CARGO_MANIFEST_DIR") {
            println!("cargo:rustc-env=STORMBRIDGE_HOT_FUNCTIONS={root}/{HOT}");
        }
    }
}
