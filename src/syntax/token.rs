//! The tokens of the language, recognised by a `logos` state machine.
//!
//! Tokens carry no text: the parser reads a token's text from the source through its span,
//! which keeps a token and its span at 12 bytes.

use logos::Logos;
use std::fmt;

#[derive(Logos, Clone, Copy, Debug, PartialEq, Eq, Hash)]
// A byte order mark is whitespace; `\r` alone ends a line as it does in old Mac files.
#[logos(skip r"[ \t\r\n\f\u{feff}]+")]
#[logos(skip(r"--[^\r\n]*", allow_greedy = true))]
#[logos(skip r"/\*([^*]|\*+[^*/])*\*+/")]
pub enum Token {
    // ---- hard keywords: never plain identifiers (back-quote them to use as names)
    #[token("flow")]
    Flow,
    #[token("stage")]
    Stage,
    #[token("activity")]
    Activity,
    #[token("run")]
    Run,
    #[token("from")]
    From,
    #[token("merge")]
    Merge,
    #[token("with")]
    With,
    #[token("if")]
    If,
    #[token("and")]
    And,
    #[token("or")]
    Or,
    #[token("not")]
    Not,
    #[token("is")]
    Is,
    #[token("null")]
    Null,
    #[token("in")]
    In,
    #[token("like")]
    Like,
    #[token("true")]
    True,
    #[token("false")]
    False,
    #[token("as")]
    As,
    #[token("on")]
    On,
    #[token("by")]
    By,
    #[token("case")]
    Case,
    #[token("else")]
    Else,
    #[token("where")]
    Where,
    #[token("select")]
    Select,
    #[token("join")]
    Join,
    #[token("group")]
    Group,
    #[token("order")]
    Order,
    #[token("limit")]
    Limit,
    #[token("save")]
    Save,
    #[token("route")]
    Route,
    #[token("fork")]
    Fork,
    #[token("each")]
    Each,
    #[token("wait")]
    Wait,
    #[token("activate")]
    Activate,
    #[token("call")]
    Call,
    #[token("depends")]
    Depends,
    #[token("while")]
    While,

    // ---- soft keywords: meaningful in one position, ordinary names elsewhere
    #[token("version")]
    Version,
    #[token("to")]
    To,
    #[token("until")]
    Until,
    #[token("end")]
    End,
    #[token("asc")]
    Asc,
    #[token("desc")]
    Desc,
    #[token("exec")]
    Exec,
    #[token("sh")]
    Sh,
    #[token("signal")]
    Signal,
    #[token("pool")]
    Pool,
    #[token("query")]
    Query,

    // ---- names and literals
    #[regex(r"[A-Za-z_][A-Za-z0-9_]*")]
    Ident,
    #[regex(r"`[^`\n]*`")]
    QuotedIdent,
    #[regex(r"[0-9]+")]
    Int,
    #[regex(r"[0-9]+\.[0-9]+")]
    Float,
    #[regex(r"[0-9]+(ms|s|m|h|d)", priority = 10)]
    Duration,
    #[regex(r"'([^'\\\n]|\\[^\n]|'')*'")]
    SingleQuoted,
    #[regex(r#""([^"\\\n]|\\[^\n]|"")*""#)]
    DoubleQuoted,
    #[regex(r#""""([^"]|"[^"]|""[^"])*""""#)]
    TripleQuoted,

    // ---- punctuation
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token(",")]
    Comma,
    #[token(":")]
    Colon,
    #[token(";")]
    Semi,
    #[token(".")]
    Dot,
    #[token("@")]
    At,
    #[token("|")]
    Pipe,
    #[token("->")]
    Arrow,
    #[token("=")]
    Eq,
    #[token("==")]
    EqEq,
    #[token("!=")]
    NotEq,
    #[token("<>")]
    LtGt,
    #[token("<")]
    Lt,
    #[token("<=")]
    Le,
    #[token(">")]
    Gt,
    #[token(">=")]
    Ge,
    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("%")]
    Percent,
    #[token("||")]
    Concat,

    // ---- malformed input, kept as tokens so the lexer never stops early
    #[regex(r"'([^'\\\n]|\\[^\n]|'')*")]
    UnterminatedSingle,
    #[regex(r#""([^"\\\n]|\\[^\n]|"")*"#)]
    UnterminatedDouble,
    #[regex(r#""""([^"]|"[^"]|""[^"])*"#)]
    UnterminatedTriple,
    #[regex(r"`[^`\n]*")]
    UnterminatedQuotedIdent,
    #[regex(r"/\*([^*]|\*+[^*/])*\**")]
    UnterminatedComment,
    #[regex(r"[0-9]+(\.[0-9]+)?[A-Za-z_][A-Za-z0-9_]*")]
    BadNumber,
    /// A character that starts no token.
    Unknown,
}

impl Token {
    /// Soft keywords may stand wherever a name is expected.
    pub fn is_soft_keyword(self) -> bool {
        matches!(
            self,
            Token::Version
                | Token::To
                | Token::Until
                | Token::End
                | Token::Asc
                | Token::Desc
                | Token::Exec
                | Token::Sh
                | Token::Signal
                | Token::Pool
                | Token::Query
        )
    }

    pub fn is_keyword(self) -> bool {
        (self as u8) <= (Token::Query as u8)
    }

    /// Tokens that only come from malformed input; the lexer reports each one.
    pub fn is_error(self) -> bool {
        matches!(
            self,
            Token::UnterminatedSingle
                | Token::UnterminatedDouble
                | Token::UnterminatedTriple
                | Token::UnterminatedQuotedIdent
                | Token::UnterminatedComment
                | Token::BadNumber
                | Token::Unknown
        )
    }

    /// How the token reads in a message: keywords and punctuation in back-quotes, the rest by kind.
    pub fn describe(self) -> &'static str {
        use Token::*;
        match self {
            Flow => "`flow`",
            Stage => "`stage`",
            Activity => "`activity`",
            Run => "`run`",
            From => "`from`",
            Merge => "`merge`",
            With => "`with`",
            If => "`if`",
            And => "`and`",
            Or => "`or`",
            Not => "`not`",
            Is => "`is`",
            Null => "`null`",
            In => "`in`",
            Like => "`like`",
            True => "`true`",
            False => "`false`",
            As => "`as`",
            On => "`on`",
            By => "`by`",
            Case => "`case`",
            Else => "`else`",
            Where => "`where`",
            Select => "`select`",
            Join => "`join`",
            Group => "`group`",
            Order => "`order`",
            Limit => "`limit`",
            Save => "`save`",
            Route => "`route`",
            Fork => "`fork`",
            Each => "`each`",
            Wait => "`wait`",
            Activate => "`activate`",
            Call => "`call`",
            Depends => "`depends`",
            While => "`while`",
            Version => "`version`",
            To => "`to`",
            Until => "`until`",
            End => "`end`",
            Asc => "`asc`",
            Desc => "`desc`",
            Exec => "`exec`",
            Sh => "`sh`",
            Signal => "`signal`",
            Pool => "`pool`",
            Query => "`query`",
            Ident | QuotedIdent => "a name",
            Int => "an integer",
            Float => "a number",
            Duration => "a duration",
            SingleQuoted | DoubleQuoted | TripleQuoted => "a string",
            LParen => "`(`",
            RParen => "`)`",
            LBracket => "`[`",
            RBracket => "`]`",
            LBrace => "`{`",
            RBrace => "`}`",
            Comma => "`,`",
            Colon => "`:`",
            Semi => "`;`",
            Dot => "`.`",
            At => "`@`",
            Pipe => "`|`",
            Arrow => "`->`",
            Eq => "`=`",
            EqEq => "`==`",
            NotEq => "`!=`",
            LtGt => "`<>`",
            Lt => "`<`",
            Le => "`<=`",
            Gt => "`>`",
            Ge => "`>=`",
            Plus => "`+`",
            Minus => "`-`",
            Star => "`*`",
            Slash => "`/`",
            Percent => "`%`",
            Concat => "`||`",
            UnterminatedSingle | UnterminatedDouble | UnterminatedTriple => {
                "an unterminated string"
            }
            UnterminatedQuotedIdent => "an unterminated quoted name",
            UnterminatedComment => "an unterminated comment",
            BadNumber => "a malformed number",
            Unknown => "an unexpected character",
        }
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}
