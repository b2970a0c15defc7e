//! The `netpol` command line: all the work is in the library (`netpol_compiler::cli`).

fn main() -> std::process::ExitCode {
    netpol_compiler::cli::main()
}
