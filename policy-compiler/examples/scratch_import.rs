use netpol_compiler::diagnostic;
use netpol_compiler::document::files::Disk;
use netpol_compiler::engine::policy;
fn main() {
    let paths: Vec<std::path::PathBuf> = std::env::args().skip(1).map(Into::into).collect();
    let imp = policy::import(&Disk, &paths);
    let verbose = std::env::var("V").is_ok();
    if verbose {
        print!(
            "{}",
            diagnostic::render_human(&imp.diagnostics, &imp.sources, diagnostic::Style::Plain)
        );
    } else {
        for d in imp.diagnostics.iter().filter(|d| d.is_error()) {
            let p = d.span.map(|s| imp.sources.position(s).to_string());
            println!("{:?} {} {}", p, d.code, d.message);
        }
    }
    println!(
        "{:?} errors={} warnings={}",
        imp.set.stats,
        imp.diagnostics.error_count(),
        imp.diagnostics.warning_count()
    );
}
