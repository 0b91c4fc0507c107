//! Text that may name environment variables (`${PGPASSWORD}`). Resolution keeps the template;
//! the environment is read only when a connector is opened, and the value it gives never
//! prints: `Debug` and `Display` of both types show the template.

use std::fmt;

/// A template as written in `wvflow.toml`: literal text and `${NAME}` references.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretText {
    template: String,
}

/// Why a template cannot stand (checked when `wvflow.toml` is read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateError {
    /// `${` without its `}`.
    Unterminated { at: usize },
    /// `${}` or `${1X}`: not a variable name.
    BadName { at: usize, name: String },
    /// A `$` not followed by `{` or `$`.
    LoneDollar { at: usize },
}

/// Why a template could not be expanded when its connector was opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExpandError {
    /// The variable is not set (or is not UTF-8). Only its name is kept.
    Unset { name: String },
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpandError::Unset { name } => {
                write!(f, "the environment variable `{name}` is not set")
            }
        }
    }
}

impl std::error::Error for ExpandError {}

/// A template expanded: its value for the database client only. It prints as its template.
pub struct Revealed {
    template: String,
    value: String,
}

impl Revealed {
    /// The expanded text, to hand to the database client and nowhere else.
    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for Revealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Revealed({:?})", self.template)
    }
}

impl fmt::Display for Revealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.template)
    }
}

/// One piece of a template.
enum Piece<'t> {
    Text(&'t str),
    Var(&'t str),
}

impl SecretText {
    /// The template, if every `$` in it is `${NAME}` or `$$` (a literal `$`).
    pub fn parse(template: &str) -> Result<SecretText, TemplateError> {
        pieces(template)?;
        Ok(SecretText {
            template: template.to_string(),
        })
    }

    /// The template as written: what messages show.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// The names of the variables it reads, in order.
    pub fn variables(&self) -> Vec<&str> {
        pieces(&self.template)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| match p {
                Piece::Var(name) => Some(name),
                Piece::Text(_) => None,
            })
            .collect()
    }

    /// Expanded with `lookup` (the process environment: [`SecretText::expand_env`]).
    pub fn expand(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<Revealed, ExpandError> {
        let mut value = String::new();
        for piece in pieces(&self.template).unwrap_or_default() {
            match piece {
                Piece::Text(text) => value.push_str(text),
                Piece::Var(name) => match lookup(name) {
                    Some(v) => value.push_str(&v),
                    None => {
                        return Err(ExpandError::Unset {
                            name: name.to_string(),
                        });
                    }
                },
            }
        }
        Ok(Revealed {
            template: self.template.clone(),
            value,
        })
    }

    /// Expanded with the environment of the process, as it is now.
    pub fn expand_env(&self) -> Result<Revealed, ExpandError> {
        self.expand(|name| std::env::var(name).ok())
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretText({:?})", self.template)
    }
}

impl fmt::Display for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.template)
    }
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn pieces(template: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = template;
    let mut at = 0;
    while let Some(dollar) = rest.find('$') {
        if dollar > 0 {
            out.push(Piece::Text(&rest[..dollar]));
        }
        let after = &rest[dollar + 1..];
        let used = if after.starts_with('$') {
            out.push(Piece::Text("$"));
            2
        } else if let Some(inner) = after.strip_prefix('{') {
            let Some(close) = inner.find('}') else {
                return Err(TemplateError::Unterminated { at: at + dollar });
            };
            let name = &inner[..close];
            if !is_name(name) {
                return Err(TemplateError::BadName {
                    at: at + dollar,
                    name: name.to_string(),
                });
            }
            out.push(Piece::Var(name));
            close + 3
        } else {
            return Err(TemplateError::LoneDollar { at: at + dollar });
        };
        at += dollar + used;
        rest = &rest[dollar + used..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_variables_and_prints_only_the_template() {
        let url = SecretText::parse("postgresql://app:${PW}@db:5432/a$$b").unwrap();
        assert_eq!(url.variables(), ["PW"]);
        let open = url
            .expand(|n| (n == "PW").then(|| "hunter2".to_string()))
            .unwrap();
        assert_eq!(open.expose(), "postgresql://app:hunter2@db:5432/a$b");
        for shown in [
            format!("{open}"),
            format!("{open:?}"),
            format!("{url}"),
            format!("{url:?}"),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("${PW}"), "{shown}");
        }
    }

    #[test]
    fn an_unset_variable_is_named_not_guessed() {
        let url = SecretText::parse("${A}${B}").unwrap();
        let err = url.expand(|n| (n == "A").then(String::new)).unwrap_err();
        assert_eq!(err, ExpandError::Unset { name: "B".into() });
    }

    #[test]
    fn malformed_references_are_refused() {
        assert_eq!(
            SecretText::parse("a${PW").unwrap_err(),
            TemplateError::Unterminated { at: 1 }
        );
        assert_eq!(
            SecretText::parse("${1X}").unwrap_err(),
            TemplateError::BadName {
                at: 0,
                name: "1X".into()
            }
        );
        assert_eq!(
            SecretText::parse("ab$c").unwrap_err(),
            TemplateError::LoneDollar { at: 2 }
        );
        assert!(SecretText::parse("").is_ok());
    }
}
