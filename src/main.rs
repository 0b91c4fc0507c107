fn main() -> std::process::ExitCode {
    wvflow::cli::main()
}
