//! Links the binary straight to the libtorch that torch-sys found, so it runs without
//! `LD_LIBRARY_PATH` and sees CUDA where the machine has it.
//!
//! torch-sys's own link flags reach only torch-sys; it exports its libtorch folder to direct
//! dependents as `DEP_TCH_LIBTORCH_LIB`. We add an rpath to that folder and link `torch` with
//! `--no-as-needed`: under the default `--as-needed`, the linker drops `libtorch.so` (and with it
//! `libtorch_cuda.so`) because no symbol of ours names it, and `Cuda::is_available()` turns false.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB").unwrap_or_else(|_| {
        panic!(
            "torch-sys did not export DEP_TCH_LIBTORCH_LIB: build through scripts/env.sh (or set \
             LIBTORCH to the torch folder of the venv made by scripts/setup.sh)"
        )
    });
    let lib = Path::new(&lib);
    if !lib.join("libtorch.so").exists() && !lib.join("libtorch.dylib").exists() {
        panic!(
            "no libtorch library in {}: run scripts/setup.sh first",
            lib.display()
        );
    }

    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-ltorch");

    // Record the libtorch version for the run JSON; pip's torch keeps it in torch/version.py.
    let version_file = lib.join("..").join("version.py");
    println!("cargo:rerun-if-changed={}", version_file.display());
    let version = std::fs::read_to_string(&version_file)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("__version__ = "))
                .map(|v| v.trim().trim_matches('\'').trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=GRADTRACE_LIBTORCH_VERSION={version}");
}
