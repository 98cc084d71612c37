//! joulebench's CUDA kernels, unchanged, on this machine's CPU: the
//! stand-in execution model in tools/cuda-emu (each CUDA thread an OS
//! thread, blocks in turn, barriers for `__syncthreads` and warp shuffles)
//! runs src/ops/cuda/kernels.cu and src/train/cuda/kernels.cu against
//! double-precision references, including every kernel's deliberate fault.
//! It needs a C++20 compiler (`CXX`, else `c++`), not a GPU or the CUDA
//! toolkit; on a GPU, tests/cuda_kernels.rs checks the same kernels there.

use std::process::Command;

#[test]
fn the_cuda_kernels_agree_with_their_references_under_the_host_emulator() {
    let root = env!("CARGO_MANIFEST_DIR");
    let exe = std::env::temp_dir().join(format!("joulebench-cuda-emu-{}", std::process::id()));
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let built = Command::new(&cxx)
        .args(["-std=c++20", "-O1", "-pthread", "-Wall", "-Werror", "-I"])
        .arg(format!("{root}/tools/cuda-emu/include"))
        .arg(format!("{root}/tools/cuda-emu/check.cpp"))
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C++ compiler {cxx}: {e} (set CXX)"));
    assert!(
        built.status.success(),
        "{cxx} failed:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let run = Command::new(&exe).output().unwrap();
    let _ = std::fs::remove_file(&exe);
    let table = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(table.contains("all kernels agree: 0 failed"), "{table}");
    // Every kernel and both element types were exercised.
    for what in [
        "bias-act | f32",
        "bias-act | bf16",
        "cross-entropy | f32 u32",
        "cross-entropy | bf16 i64",
        "adamw-multi | 5 tensors",
    ] {
        let squeezed = table.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(squeezed.contains(what), "no {what} row:\n{table}");
    }
}
