fn main() -> std::process::ExitCode {
    millrace::cli::main()
}
