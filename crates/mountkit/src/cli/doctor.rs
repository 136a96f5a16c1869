//! `system doctor [--fix]`: the library's [`DoctorReport`] as text (problems first, each with its object,
//! what is wrong and the fix; then the kernel's features) or JSON. Exits 1 when a problem is left.

use mountkit::DoctorReport;
use mountkit::cli_args::Format;

use super::output::print_json_or;

/// Prints the report; returns the exit status.
pub fn print(format: Format, r: &DoctorReport) -> anyhow::Result<i32> {
    print_json_or(format, r, |o| {
        if r.problems.is_empty() {
            writeln!(o, "No problems found.")?;
        } else {
            writeln!(o, "Problems:")?;
            for p in &r.problems {
                writeln!(o, "  {}", p.object)?;
                writeln!(o, "    {}", p.problem)?;
                if p.fixed {
                    writeln!(o, "    fixed")?;
                } else {
                    writeln!(o, "    fix: {}", p.fix)?;
                }
            }
        }
        writeln!(o, "\nKernel:")?;
        for f in &r.kernel {
            let have = match f.available {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            };
            writeln!(o, "  {:<22} {have:<4} {}", f.name, f.meaning)?;
        }
        Ok(())
    })?;
    Ok(i32::from(r.problems.iter().any(|p| !p.fixed)))
}
