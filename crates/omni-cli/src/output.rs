//! Output helpers shared by the commands: JSON or text, and a progress bar on terminals only.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

/// Prints `value` as pretty JSON.
pub fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    out!("{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

/// A progress bar to `total` drawn on stderr, which stays hidden when stderr is not a terminal
/// (CI logs and pipes get no control characters).
pub fn progress(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} [{{bar:40}}] {{pos}}/{{len}} {{per_sec}} eta {{eta}}"
        ))
        .expect("the template is valid")
        .progress_chars("=> "),
    );
    bar
}
