//! Release builds hand deploy/link-order/hot-functions.txt to the linker wrapper
//! (deploy/link-order/cc-ordered, named in .cargo/config.toml), which places those functions side by
//! side; other builds link as usual.

fn main() {
    const HOT: &str = "deploy/link-order/hot-functions.txt";
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={HOT}");
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        if let Ok(root) = std::env::var("CARGO_MANIFEST_DIR") {
            println!("cargo:rustc-env=STORMBRIDGE_HOT_FUNCTIONS={root}/{HOT}");
        }
    }
}
