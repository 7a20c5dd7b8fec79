//! `junction-load numbers`: a number plan's calls, one per line, in the form `junction
//! route-test CONFIG --file` reads (`from,called[,calling]`), so that one pipeline turns a
//! plan into the expectations `--expect` checks:
//!
//! ```text
//! junction-load numbers --from carrier --count 1000 --numbers '+1212555XXXX:2,+1646555XXXX' \
//!   | junction route-test junction.toml --file /dev/stdin --format tsv > expect.tsv
//! ```

use crate::numbers::{Inf, Plan, Rng, Spec};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

pub const USAGE: &str = "\
junction-load numbers: the calls of a number plan, one per line (from,called[,calling]), as
`junction route-test CONFIG --file` reads them.

usage:
  junction-load numbers --count N [--from TRUNK] [number options]

options:
  --count N                 calls to write
  --from TRUNK|IP           the ingress route-test assumes (the trunk the UAC plays)  [loadgen]
  --number NUM              called number; [fieldN] is field N of the call's --inf line
  --numbers PATTERNS        called numbers from patterns: P1:W1,P2:W2, X a random digit
  --calling NUM             calling number ([fieldN] works too)
  --calling-numbers PATTERNS  calling numbers from patterns
  --inf FILE                SIPp injection file (SEQUENTIAL, RANDOM or USER; ';' fields)
  --seed N                  the random digits are the same for the same seed  [1]
";

/// Parse and write; 0 when written, 2 for usage errors.
pub fn main(args: &[String]) -> ExitCode {
    match run(args, &mut std::io::stdout().lock()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("junction-load numbers: {e} (junction-load numbers --help)");
            ExitCode::from(2)
        }
    }
}

/// Write the calls to `out`; `Ok(false)`: --help was asked for.
pub fn run(args: &[String], out: &mut dyn Write) -> Result<bool, String> {
    let mut count: Option<u64> = None;
    let mut from = "loadgen".to_string();
    let mut called: Option<Spec> = None;
    let mut calling: Option<Spec> = None;
    let mut inf = None;
    let mut seed = 1u64;
    let mut it = args.iter();
    while let Some(opt) = it.next() {
        let opt = opt.as_str();
        if opt == "--help" || opt == "-h" {
            return Ok(false);
        }
        let v = it
            .next()
            .ok_or_else(|| format!("{opt}: a value is required"))?;
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{opt}: not a number: {v:?}"))
        };
        match opt {
            "--count" => count = Some(number(v)?),
            "--from" => from = v.clone(),
            "--number" | "-s" => called = Some(Spec::single(opt, v)?),
            "--numbers" => called = Some(Spec::generator(opt, v)?),
            "--calling" => calling = Some(Spec::single(opt, v)?),
            "--calling-numbers" => calling = Some(Spec::generator(opt, v)?),
            "--inf" | "-inf" => inf = Some(Arc::new(Inf::load(std::path::Path::new(v))?)),
            "--seed" => seed = number(v)?,
            _ => return Err(format!("unknown option {opt}")),
        }
    }
    let count = count.ok_or("--count N is required")?;
    let plan = Plan {
        inf,
        called: called.ok_or("--number or --numbers is required")?,
        calling,
        expect: None,
    };
    plan.check()?;
    let mut rng = Rng::new(seed);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for n in 0..count {
        plan.pick(n, &mut rng, &mut a, &mut b);
        let (a, b) = (String::from_utf8_lossy(&a), String::from_utf8_lossy(&b));
        let line = if b.is_empty() {
            format!("{from},{a}")
        } else {
            format!("{from},{a},{b}")
        };
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn writes_route_test_lines() {
        let mut out = Vec::new();
        run(
            &args("--count 4 --from carrier --numbers +1212555XXXX:1,911:1 --calling 2125550100"),
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("carrier,+1212555"), "{text}");
        assert!(lines[0].ends_with(",2125550100"), "{text}");
        assert_eq!(lines[1], "carrier,911,2125550100");
        assert!(run(&args("--count 1"), &mut Vec::new()).is_err());
        assert!(run(&args("--count 1 --number [field0]"), &mut Vec::new()).is_err());
        assert_eq!(run(&args("--help"), &mut Vec::new()), Ok(false));
    }
}
