//! Every construct of the language (docs/language.md), parsed and shown as a compact tree. Each snapshot holds
//! the source (as its description) beside the tree; each was read by hand.

use wvflow::source::FileId;
use wvflow::syntax::{parse, sexpr};

fn check(name: &str, src: &str) {
    let parsed = parse(src, FileId(0));
    assert!(
        parsed.diagnostics.is_empty(),
        "{name}: unexpected diagnostics: {:#?}",
        parsed.diagnostics
    );
    insta::with_settings!({ description => src, omit_expression => true }, {
        insta::assert_snapshot!(name, sexpr::file(&parsed.ast));
    });
}

macro_rules! constructs {
    ($($name:ident: $src:expr;)*) => {
        $(
            #[test]
            fn $name() {
                check(stringify!($name), $src);
            }
        )*
    };
}

constructs! {
    patterns_single_calls_delays_first_success_failed_items_and_mapped_children: r#"
flow f(eta: timestamp = timestamp '2026-12-01 09:00:00') = {
  stage a = from t | show(_.total) | call Report(n: _.total)
  stage pause = wait(2s)
  stage at = wait until now() >= eta + 15m and now() < date '2026-12-02'
  stage fastest [trigger: first_success] = merge a, pause
  stage children [tolerated_failures: '10%'] = from t | each call Enrich(id: _.id)
  stage retry = from failed(children), failed
}"#;
    flow_header_with_version_params_depends_if_and_config: r#"
flow report @version(3) (day: date = '2024-01-01', max_rows: int = -5, ratio: float = 2.5, enabled: boolean = true,
                        pause: duration = 90s, at: timestamp, label: string = "x",)
  depends on ingest, `clean up` if ingest.failed or (load.done and not load.success)
  with { schedule: cron('0 2 * * *'), timezone: 'Europe/Berlin'
         concurrency: 1, } = {
  stage s = from t
}"#;
    stage_triggers_config_styles_and_connector: r#"
flow f = {
  stage a [retries: 3, retry_delay: 1s, backoff: exponential,] = from t
  stage b if a.failed or not a.success and a.done with {
    timeout: 5m
    non_retryable: [2, 3]
    on_failure: ignore
    trigger: one_failed
    compensate: undo(order_id: _.order_id)
    idempotency_key: 'k-' || _.id
    tolerated_failures: '10%'
  } on duckdb = from a
  stage c if (a.success or b.failed) and not (a.skipped or b.cancelled) = from a, b
}"#;
    sources: r#"
flow f = {
  stage a = from orders, 'data/x.csv', "data/y.ndjson", [[1, 'a'], [2, 'b'],] as t(id, name)
  stage b = from [[1]]
  stage c = merge a, b
  stage d = extract(day: run_date, 'positional')
  stage e = call child @version(2) (1, name = 'x', flag: true)
  stage g = -> next_flow
  stage h = call plain
}"#;
    relational_operators: r#"
flow f = {
  stage q = from orders
    | where _.amount > 100 and status in ('a', 'b') and name not like 'x%' and note is not null and y is null
    | join customers on orders.customer_id = customers.id
    | select id, count(*) as n, sum(amount) / 2 as half, `odd name`, *
    | group by id, region
    | order by n desc, id asc, region
    | limit 10
    | save to analytics.daily_orders
}"#;
    routes_and_fork: r#"
flow f = {
  stage r = from t | route { case _.amount > 100 -> big case _.amount > 10 -> mid, else -> small }
  stage h = from t | route by hash(_.user_id) { case 50 -> a case 50 -> b }
  stage x = from t | fork {
    stage left = from x | where a = 1
    stage right if left.done = notify('x')
  }
}"#;
    orchestration_operators: r#"
flow f = {
  stage w = from t | each fetch(_.url, retries: 2) | wait(5m) | wait until _.status = 'ready'
    | activate('file', path: 'out/a.csv', format: 'csv',) | activate('log') | notify(channel: 'ops')
    | -> next(day = run_date) | end()
}"#;
    activities_signals_queries_and_run: r#"
activity charge(order_id: string, amount: float = 0.0) with { retries: 3, timeout: 30s } = exec('bin/charge', '--id', order_id, amount)
activity notify(text: string) = sh("""printf '{"text": "%s"}\n' "$WV_TEXT" """);
activity simple = sh('echo ''{}''')
flow f(n: int = 1) = {
  stage s = notify('x');
  signal approved = false
  query status = 'ok'
};
run flow f(2)
run flow f(n = 3)
run flow f(n: 4)
run flow f
"#;
    expression_precedence: r#"
flow f = {
  stage a = from t
    | where not a = 1 or b < 2 and c + d * -e >= f % 3 - g || 'h' and x like 'a%' and -(1 + 2) * 3 <> 4
    | select [1, 2.5, null, true], hash(_.id) % 100, a.b, 1 + 2 + 3, 1 - 2 - 3, (a or b) and c, x != y, x == y, x <= y
}"#;
    literals_strings_and_durations: r#"
flow f = {
  stage a = from t | select 'it''s', "say \"hi\"\n", 'tab\there', """raw \n 'x' "y"
spans lines""", 100ms, 30s, 5m, 2h, 1d, 0, 9223372036854775807, 1.25, '1h 30m'
}"#;
    keywords_as_names: r#"
flow version(end: int) = {
  stage to = from `from` | select end, asc, desc, query, signal, exec, sh, until, version, `select` as `from`
}"#;
    comments_and_separators: r#"
-- a line comment
/* a block
   comment */
flow f = { -- trailing
  stage a = from t; stage b = from a; -- two stages on one line
};;
"#;
}
