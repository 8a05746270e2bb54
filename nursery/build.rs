//! Sets `cfg(nursery_taskdump)` where tokio's task dumps exist: built with
//! `--cfg tokio_unstable` and the `taskdump` feature, on Linux on one of the
//! architectures tokio supports them on. Without it, the await-point traces
//! of dumps and stuck reports say how to turn them on.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(nursery_taskdump)");
    println!("cargo::rerun-if-changed=build.rs");
    let cfg = |name: &str| std::env::var(format!("CARGO_CFG_{name}")).ok();
    let unstable = cfg("TOKIO_UNSTABLE").is_some();
    let feature = std::env::var_os("CARGO_FEATURE_TASKDUMP").is_some();
    let linux = cfg("TARGET_OS").as_deref() == Some("linux");
    let arch = cfg("TARGET_ARCH");
    let supported = matches!(
        arch.as_deref(),
        Some("x86" | "x86_64" | "aarch64" | "s390x")
    );
    if unstable && feature && linux && supported {
        println!("cargo::rustc-cfg=nursery_taskdump");
    }
}
