//! Embeds the git commit and the candle version in the binary for provenance.
use std::process::Command;

fn main() {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let sha = git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
        .map(|s| if s.is_empty() { "clean" } else { "dirty" })
        .unwrap_or("unknown");
    println!("cargo:rustc-env=JOULEBENCH_GIT_SHA={sha}");
    println!("cargo:rustc-env=JOULEBENCH_GIT_STATE={dirty}");
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let candle = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"candle-core\""))
        .and_then(|p| p.lines().find(|l| l.starts_with("version = ")))
        .map(|l| {
            l.trim_start_matches("version = ")
                .trim_matches('"')
                .to_string()
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=JOULEBENCH_CANDLE_VERSION={candle}");
    cuda_kernels();
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/index");
    println!("cargo:rerun-if-changed=Cargo.lock");
}

/// With the `cuda` feature: compiles each CUDA source to PTX with nvcc
/// (`NVCC`, else `nvcc` on PATH; `CUDA_COMPUTE_CAP`, default 90), for
/// `include_str!` in its module. A compile error fails the build.
fn cuda_kernels() {
    const SOURCES: [(&str, &str); 2] = [
        ("src/ops/cuda/kernels.cu", "joulebench_ops.ptx"),
        ("src/train/cuda/kernels.cu", "joulebench_kernels.ptx"),
    ];
    for (src, _) in SOURCES {
        println!("cargo:rerun-if-changed={src}");
    }
    println!("cargo:rerun-if-env-changed=NVCC");
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let nvcc = std::env::var("NVCC").unwrap_or_else(|_| "nvcc".into());
    let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "90".into());
    let dir = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    for (src, ptx) in SOURCES {
        let status = Command::new(&nvcc)
            .args(["--ptx", &format!("-arch=compute_{cap}"), "-O3", "-o"])
            .arg(dir.join(ptx))
            .arg(src)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("{nvcc} failed to compile {src} ({s})"),
            Err(e) => panic!(
                "cannot run {nvcc} to compile {src}: {e} (set NVCC, or use scripts/build-cuda.sh)"
            ),
        }
    }
}
