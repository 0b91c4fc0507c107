//! A compact, span-free rendering of the syntax tree as S-expressions, for snapshot tests and
//! `wvflow parse` debugging. Strings are shown in single quotes with `'` doubled.

use super::ast::*;
use std::fmt::Write;

pub fn file(f: &File) -> String {
    let mut out = String::new();
    for item in &f.items {
        match item {
            Item::Flow(flow) => write_flow(&mut out, flow),
            Item::Activity(a) => write_activity(&mut out, a),
            Item::Run(r) => {
                let _ = writeln!(out, "(run {})", flow_call(&r.call));
            }
            Item::Pool(p) => {
                let _ = writeln!(out, "(pool {} {})", p.name.name, config(&p.config));
            }
            Item::Test(t) => {
                let _ = writeln!(out, "(test {} {})", t.name.name, t.statements.len());
            }
        }
    }
    out
}

fn write_flow(out: &mut String, f: &Flow) {
    let _ = write!(out, "(flow {}", f.name.name);
    if let Some(v) = &f.version {
        let _ = write!(out, " @{}", v.value);
    }
    write_params(out, &f.params);
    if !f.depends_on.is_empty() {
        let _ = write!(out, " (depends {})", names(&f.depends_on));
    }
    if let Some(c) = &f.condition {
        let _ = write!(out, " (if {})", condition(c));
    }
    if let Some(c) = &f.config {
        let _ = write!(out, " {}", config(c));
    }
    out.push('\n');
    for m in &f.members {
        match m {
            Member::Stage(s) => write_stage(out, s, 1),
            Member::Signal(n) => {
                let _ = writeln!(out, "  (signal {} {})", n.name.name, expr(&n.value));
            }
            Member::Query(n) => {
                let _ = writeln!(out, "  (query {} {})", n.name.name, expr(&n.value));
            }
        }
    }
    out.push_str(")\n");
}

fn write_params(out: &mut String, params: &[Param]) {
    if params.is_empty() {
        return;
    }
    out.push_str(" (params");
    for p in params {
        let _ = write!(out, " ({} {}", p.name.name, p.ty.value.name());
        if let Some(d) = &p.default {
            let _ = write!(out, " {}", expr(d));
        }
        out.push(')');
    }
    out.push(')');
}

fn write_activity(out: &mut String, a: &Activity) {
    let _ = write!(out, "(activity {}", a.name.name);
    write_params(out, &a.params);
    if let Some(c) = &a.config {
        let _ = write!(out, " {}", config(c));
    }
    match &a.command {
        Command::Exec(args) => {
            let _ = write!(out, " (exec {})", exprs(args));
        }
        Command::Sh(s) => {
            let _ = write!(out, " (sh {})", quote(&s.value));
        }
    }
    out.push_str(")\n");
}

fn write_stage(out: &mut String, s: &Stage, depth: usize) {
    let indent = "  ".repeat(depth);
    let _ = write!(out, "{indent}(stage {}", s.name.name);
    if let Some(t) = &s.trigger {
        let _ = write!(out, " (if {})", condition(t));
    }
    if let Some(c) = &s.config {
        let _ = write!(out, " {}", config(c));
    }
    if let Some(c) = &s.connector {
        let _ = write!(out, " (on {})", c.name);
    }
    let _ = write!(out, "\n{indent}  {}", source(&s.body.source));
    for op in &s.body.ops {
        match &op.kind {
            OpKind::Fork(stages) => {
                let _ = writeln!(out, "\n{indent}  (fork");
                for child in stages {
                    write_stage(out, child, depth + 2);
                }
                let _ = write!(out, "{indent}  )");
            }
            kind => {
                let _ = write!(out, "\n{indent}  {}", op_kind(kind));
            }
        }
    }
    out.push_str(")\n");
}

fn source(s: &Source) -> String {
    match &s.kind {
        SourceKind::From(refs) => format!(
            "(from {})",
            refs.iter().map(source_ref).collect::<Vec<_>>().join(" ")
        ),
        SourceKind::Merge(n) => format!("(merge {})", names(n)),
        SourceKind::Activity(c) => format!("(activity {})", call(c)),
        SourceKind::CallFlow(f) => format!("(call {})", flow_call(f)),
        SourceKind::Jump(f) => format!("(jump {})", flow_call(f)),
        SourceKind::Wait(e) => format!("(wait {})", expr(e)),
        SourceKind::WaitUntil(e) => format!("(wait-until {})", expr(e)),
    }
}

fn source_ref(r: &SourceRef) -> String {
    match r {
        SourceRef::Name(n) => name(n),
        SourceRef::Table { schema, table } => format!("(table {} {})", name(schema), name(table)),
        SourceRef::File(s) => format!("(file {})", quote(&s.value)),
        SourceRef::Failed(n) => format!("(failed {})", name(n)),
        SourceRef::Values { rows, alias, .. } => {
            let rows: Vec<String> = rows.iter().map(|r| format!("[{}]", exprs(r))).collect();
            let alias = alias
                .as_ref()
                .map(|a| format!(" (as {} {})", a.table.name, names(&a.columns)))
                .unwrap_or_default();
            format!("(values {}{alias})", rows.join(" "))
        }
    }
}

fn op_kind(k: &OpKind) -> String {
    match k {
        OpKind::Where(e) => format!("(where {})", expr(e)),
        OpKind::Select(items) => {
            let items: Vec<String> = items
                .iter()
                .map(|i| match &i.alias {
                    Some(a) => format!("(as {} {})", expr(&i.expr), a.name),
                    None => expr(&i.expr),
                })
                .collect();
            format!("(select {})", items.join(" "))
        }
        OpKind::Join(join) => format!(
            "(join {} (on {}))",
            source_ref(&join.source),
            expr(&join.on)
        ),
        OpKind::GroupBy(e) => format!("(group-by {})", exprs(e)),
        OpKind::OrderBy(keys) => {
            let keys: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "({} {})",
                        if k.descending { "desc" } else { "asc" },
                        expr(&k.expr)
                    )
                })
                .collect();
            format!("(order-by {})", keys.join(" "))
        }
        OpKind::Limit(n) => format!("(limit {})", n.value),
        OpKind::SaveTo(parts) => format!(
            "(save-to {})",
            parts
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(".")
        ),
        OpKind::Route(r) => {
            let mut s = String::from("(route");
            if let Some(by) = &r.by {
                let _ = write!(s, " (by {})", expr(by));
            }
            for c in &r.cases {
                let _ = write!(s, " (case {} {})", expr(&c.when), c.target.name);
            }
            if let Some(e) = &r.otherwise {
                let _ = write!(s, " (else {})", e.name);
            }
            s + ")"
        }
        OpKind::Fork(stages) => format!(
            "(fork {})",
            names(&stages.iter().map(|s| s.name.clone()).collect::<Vec<_>>())
        ),
        OpKind::Each(c) => format!("(each {})", call(c)),
        OpKind::Wait(e) => format!("(wait {})", expr(e)),
        OpKind::WaitUntil(e) => format!("(wait-until {})", expr(e)),
        OpKind::While(e) => format!("(while {})", expr(e)),
        OpKind::Activate(a) => format!(
            "(activate {}{})",
            quote(&a.target.value),
            args_tail(&a.options)
        ),
        OpKind::Jump(f) => format!("(jump {})", flow_call(f)),
        OpKind::CallFlow(f) => format!("(call {})", flow_call(f)),
        OpKind::EachCall(f) => format!("(each-call {})", flow_call(f)),
        OpKind::End => "(end)".to_string(),
        OpKind::Activity(c) => format!("(activity {})", call(c)),
    }
}

fn config(c: &Config) -> String {
    let style = match c.style {
        ConfigStyle::Block => "with",
        ConfigStyle::Inline => "inline",
    };
    let entries: Vec<String> = c
        .entries
        .iter()
        .map(|e| format!("({} {})", e.key.name, expr(&e.value)))
        .collect();
    format!("({style} {})", entries.join(" "))
}

fn condition(c: &Condition) -> String {
    match c {
        Condition::State { target, state } => format!("{}.{}", target.name, state.name),
        Condition::Not(c, _) => format!("(not {})", condition(c)),
        Condition::And(a, b) => format!("(and {} {})", condition(a), condition(b)),
        Condition::Or(a, b) => format!("(or {} {})", condition(a), condition(b)),
    }
}

fn flow_call(f: &FlowCall) -> String {
    let mut s = f.name.name.to_string();
    if let Some(v) = &f.version {
        let _ = write!(s, "@{}", v.value);
    }
    match &f.args {
        Some(args) => format!("({s}{})", args_tail(args)),
        None => s,
    }
}

fn call(c: &Call) -> String {
    format!("({}{})", c.name.name, args_tail(&c.args))
}

fn args_tail(args: &[Arg]) -> String {
    args.iter()
        .map(|a| match &a.name {
            Some(n) => format!(" {}={}", n.name, expr(&a.value)),
            None => format!(" {}", expr(&a.value)),
        })
        .collect()
}

fn names(n: &[Ident]) -> String {
    n.iter().map(name).collect::<Vec<_>>().join(" ")
}

fn exprs(e: &[Expr]) -> String {
    e.iter().map(expr).collect::<Vec<_>>().join(" ")
}

fn quote(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\t', "\\t");
    format!("'{}'", escaped.replace('\'', "''"))
}

/// A name as it must be written: back-quoted unless it is a plain identifier.
fn name(n: &Ident) -> String {
    let plain = n
        .name
        .starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && n.name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        n.name.to_string()
    } else {
        format!("`{}`", n.name)
    }
}

pub fn expr(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Int(n) => n.to_string(),
        ExprKind::Float(x) => format!("{x:?}"),
        ExprKind::Str(s) => quote(s),
        ExprKind::Time { ty, value } => format!("({} {})", ty.name(), quote(value)),
        ExprKind::Duration {
            amount,
            unit,
            millis,
        } => format!("{amount}{unit:?}={millis}ms").to_lowercase(),
        ExprKind::Bool(b) => b.to_string(),
        ExprKind::Null => "null".to_string(),
        ExprKind::Name(n) => name(n),
        ExprKind::Field(f) => format!("{}.{}", f.base.name, f.field.name),
        ExprKind::Star => "*".to_string(),
        ExprKind::Call(c) => call(c),
        ExprKind::List(items) => format!("[{}]", exprs(items)),
        ExprKind::Unary { op, operand } => {
            let op = match op {
                UnaryOp::Neg => "neg",
                UnaryOp::Not => "not",
            };
            format!("({op} {})", expr(operand))
        }
        ExprKind::Binary { op, lhs, rhs } => {
            format!("({} {} {})", op.symbol(), expr(lhs), expr(rhs))
        }
        ExprKind::IsNull { operand, negated } => {
            format!(
                "({} {})",
                if *negated { "is-not-null" } else { "is-null" },
                expr(operand)
            )
        }
        ExprKind::InList {
            operand,
            list,
            negated,
        } => {
            format!(
                "({} {} [{}])",
                if *negated { "not-in" } else { "in" },
                expr(operand),
                exprs(list)
            )
        }
        ExprKind::Like {
            operand,
            pattern,
            negated,
        } => {
            format!(
                "({} {} {})",
                if *negated { "not-like" } else { "like" },
                expr(operand),
                expr(pattern)
            )
        }
        ExprKind::Error => "<error>".to_string(),
    }
}
