//! joulebench command-line entry point.

mod cli;

use clap::Parser;
use std::io::IsTerminal;

fn main() {
    // Die quietly on a closed pipe (`joulebench validate s.toml | head`), as Unix tools do.
    // SAFETY: setting a signal disposition to its default before any threads start.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("JOULEBENCH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .init();
    // Before any threads start; see joulebench::util::alloc for why and what it saves.
    joulebench::util::alloc::keep_freed_memory();
    // Bad arguments exit 1 like every other bad input (exit 2 means failed
    // trials, 3 a regression); --help and --version exit 0.
    let args = match cli::Cli::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() { 1 } else { 0 });
        }
    };
    match cli::main(args) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            std::process::exit(1);
        }
    }
}
