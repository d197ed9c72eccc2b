//! Release builds hand deploy/link-order/hot-functions.txt to the linker wrapper
//! (deploy/link-order/cc-ordered, named in .cargo/config.toml), which places those functions
//! side by side; other builds link as usual.
//!
//! `STORMBRIDGE_PACK_RELOCATIONS=1` in the build's environment links the binary with packed
//! relative relocations (`-z pack-relative-relocs`, DT_RELR): the table ld.so reads whole at
//! start shrinks from about 800 KB to a few KB, and so does the process's RSS. The binary then
//! runs only where glibc is 2.36 or later (Debian 12, Ubuntu 24.04, RHEL 10; not Ubuntu 22.04
//! or RHEL 9, which refuse it with "GLIBC_ABI_DT_RELR not found"), so it is not the default.

fn main() {
    const HOT: &str = "deploy/link-order/hot-functions.txt";
    const PACK: &str = "STORMBRIDGE_PACK_RELOCATIONS";
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed={PACK}");
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        // Only release builds read the list: a new one leaves other builds alone.
        println!("cargo:rerun-if-changed={HOT}");
        if let Ok(root) = std::env::var("CARGO_MANIFEST_DIR") {
            println!("cargo:rustc-env=STORMBRIDGE_HOT_FUNCTIONS={root}/{HOT}");
        }
    }
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if std::env::var(PACK).as_deref() == Ok("1") && linux {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
