// glibc's malloc took ~14 % of the server's CPU under load, mostly in
// contended frees and consolidation (benches/README.md, session 12).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    millrace::cli::main()
}
