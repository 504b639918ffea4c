// Under load glibc's malloc and free took ~14 % of the CPU samples of the
// benchmark's process, server and clients (benches/README.md, session 12).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    millrace::cli::main()
}
