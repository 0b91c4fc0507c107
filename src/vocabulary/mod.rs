//! Closed vocabularies written as words: the language's (`words`), the plan's and the
//! runtime's enums. Below the checker and the plan, which both read them.

/// A closed vocabulary: each variant with its word. Gives `ALL`, `WORDS`, `as_str`, `parse`
/// and serde as the word, so a word is written once.
macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $word:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $word)] $variant,)*
        }

        impl $name {
            pub const ALL: &[$name] = &[$($name::$variant),*];
            pub const WORDS: &[&str] = &[$($word),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)*
                }
            }

            /// The variant of a word; `None` for any other word (the checker reports it).
            pub fn parse(word: &str) -> Option<$name> {
                match word {
                    $($word => Some($name::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

pub(crate) use vocabulary;

mod words;

pub use words::*;
