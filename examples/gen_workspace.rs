//! Generates a large, valid workspace for benchmarks and stress tests.
//!
//!     cargo run --release --example gen_workspace -- --flows 2000 --stages 20 --out /tmp/big
//!
//! `--files N` spreads the flows over N files (default 1: one large file `workspace.wv`).
//! `--mb N` keeps adding flows until the output reaches about N megabytes (overrides --flows).

use std::fmt::Write as _;
use std::path::PathBuf;

struct Options {
    flows: usize,
    stages: usize,
    files: usize,
    megabytes: Option<usize>,
    out: PathBuf,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        flows: 100,
        stages: 20,
        files: 1,
        megabytes: None,
        out: PathBuf::from("target/generated"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| format!("{flag} takes a whole number"))
        };
        match flag.as_str() {
            "--flows" => options.flows = number()?,
            "--stages" => options.stages = number()?.max(4),
            "--files" => options.files = number()?.max(1),
            "--mb" => options.megabytes = Some(number()?),
            "--out" => options.out = PathBuf::from(&value),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(options)
}

/// One flow exercising most of the language: config, triggers, routes, fork, each, saga.
pub fn flow(out: &mut String, i: usize, stages: usize) {
    let _ = writeln!(
        out,
        "-- generated flow {i}\nactivity act_{i}(id: string, amount: float = 0.0) with {{ retries: 3, retry_delay: 2s, backoff: exponential, timeout: 30s }} = exec('bin/act', '--id', id, amount)\nactivity undo_{i}(id: string) with {{ retries: 5 }} = sh(\"\"\"printf '{{\"undone\": \"%s\"}}\\n' \"$WV_ID\" \"\"\")\n"
    );
    let _ = writeln!(
        out,
        "flow flow_{i} @version(1) (day: date = '2024-01-01', min_amount: float = 10.5) with {{\n  schedule: cron('{} 12 * * *')\n  timezone: 'Europe/Berlin'\n  concurrency: 1\n  timeout: 2h\n}} = {{",
        i % 60
    );
    let _ = writeln!(
        out,
        "  stage s0 [retries: 2, timeout: 5m] = from 'data/orders_{i}.csv'"
    );
    for s in 1..stages - 3 {
        let prev = s - 1;
        match s % 6 {
            0 => {
                let _ = writeln!(
                    out,
                    "  stage s{s} with {{\n    retries: 3\n    backoff: linear\n    max_retry_delay: 1m\n    compensate: undo_{i}(id: _.order_id)\n  }} = from s{prev} | each act_{i}(_.order_id, amount: _.amount * 1.5)"
                );
            }
            1 => {
                let _ = writeln!(
                    out,
                    "  stage s{s} = from s{prev}\n    | where _.amount > min_amount and status in ('paid', 'shipped') and note is not null\n    | select order_id, customer_id, amount, amount * 0.19 as tax, upper(status) as status"
                );
            }
            2 => {
                let _ = writeln!(
                    out,
                    "  stage s{s} if s{prev}.success with {{ priority: 1 }} = from s{prev}\n    | group by customer_id\n    | select customer_id, count(*) as orders, sum(amount) as revenue\n    | order by revenue desc, customer_id\n    | limit 100"
                );
            }
            3 => {
                let _ = writeln!(
                    out,
                    "  stage s{s} = from s{prev} | join customers on s{prev}.customer_id = customers.id | save to mart.orders_{i}_{s}"
                );
            }
            4 => {
                let _ = writeln!(
                    out,
                    "  stage s{s} = from s{prev} | wait until _.status = 'ready' | activate('file', path: 'out/s{s}.csv')"
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "  stage s{s} = merge s{prev}, s{}",
                    prev.saturating_sub(1)
                );
            }
        }
    }
    let last = stages - 4;
    let _ = writeln!(
        out,
        "  stage routed = from s{last} | route {{ case _.amount >= 1000 -> big case _.amount >= 100 -> medium else -> small }}\n  stage big = from routed | fork {{\n    stage big_a = from big | each act_{i}(_.order_id)\n    stage big_b = from big | activate('log')\n  }}\n  stage medium = from routed | select order_id, amount\n  stage small = from routed | {}\n}}\n",
        // Each flow hands over to the one before it; the first ends the chain.
        if i == 0 {
            "end()".to_string()
        } else {
            format!("-> flow_{}(day = run_date)", i - 1)
        }
    );
}

fn main() {
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("gen_workspace: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&options.out) {
        eprintln!(
            "gen_workspace: cannot create {}: {e}",
            options.out.display()
        );
        std::process::exit(2);
    }
    let target_bytes = options.megabytes.map(|mb| mb * 1_000_000);
    let mut texts = vec![String::new(); options.files];
    let mut total = 0usize;
    let mut i = 0usize;
    loop {
        let done = match target_bytes {
            Some(target) => total >= target,
            None => i >= options.flows,
        };
        if done {
            break;
        }
        let text = &mut texts[i % options.files];
        let before = text.len();
        flow(text, i, options.stages);
        total += text.len() - before;
        i += 1;
    }
    for (n, text) in texts.iter().enumerate() {
        let name = if options.files == 1 {
            "workspace.wv".to_string()
        } else {
            format!("part_{n:04}.wv")
        };
        let path = options.out.join(name);
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("gen_workspace: cannot write {}: {e}", path.display());
            std::process::exit(2);
        }
    }
    println!(
        "wrote {i} flows, {total} bytes in {} file(s) under {}",
        options.files,
        options.out.display()
    );
}
