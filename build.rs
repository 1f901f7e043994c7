//! Build script: CUDA kernels (kernels/*.cu) are compiled here once the CUDA backend lands.
//! For now it only declares the cfg that will say whether kernels were built, and reruns
//! when kernels/ changes.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(sluice_kernels)");
    println!("cargo::rerun-if-changed=kernels");
    println!("cargo::rerun-if-changed=build.rs");
}
