//! SCIM filters and attribute paths (RFC 7644 §3.4.2.2, §3.5.2): a tokenizer and a
//! recursive-descent parser into [`Filter`], its evaluation on a JSON value (PATCH value
//! paths), and the parser of PATCH paths (`emails[type eq "work"].value`).
//!
//! Hand-written rather than a crate: the grammar is small, the errors name the position,
//! and the one crate for it (`scim-filter`) pulls in nom 7 and rust_decimal for a tree we
//! would map again anyway.

use std::fmt;

/// An attribute path: an optional schema URN, the attribute, an optional sub-attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        write!(f, "{}", self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

impl AttrPath {
    /// Parses `[urn:]name[.sub]`. The URN is everything up to the last `:`.
    pub fn parse(raw: &str) -> Result<Self, FilterError> {
        let (urn, rest) = match raw.rfind(':') {
            Some(i) => (Some(raw[..i].to_owned()), &raw[i + 1..]),
            None => (None, raw),
        };
        let (name, sub) = match rest.split_once('.') {
            Some((n, s)) => (n, Some(s)),
            None => (rest, None),
        };
        let valid = |s: &str| {
            let mut chars = s.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '$')
                && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'))
        };
        if !valid(name) || sub.is_some_and(|s| !valid(s)) {
            return Err(FilterError(format!("{raw:?} is not an attribute path")));
        }
        Ok(Self {
            urn: urn.filter(|u| !u.is_empty()),
            name: name.to_owned(),
            sub: sub.map(str::to_owned),
        })
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    fn parse(word: &str) -> Option<Self> {
        Some(match word.to_ascii_lowercase().as_str() {
            "eq" => Self::Eq,
            "ne" => Self::Ne,
            "co" => Self::Co,
            "sw" => Self::Sw,
            "ew" => Self::Ew,
            "gt" => Self::Gt,
            "ge" => Self::Ge,
            "lt" => Self::Lt,
            "le" => Self::Le,
            _ => return None,
        })
    }
}

/// A filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: serde_json::Value,
    },
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `attr[filter]`: some element of the multi-valued `attr` matches `filter`.
    ValuePath {
        path: AttrPath,
        filter: Box<Filter>,
    },
}

/// Why a filter or path could not be parsed (SCIM `invalidFilter` / `invalidPath`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError(pub String);

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 4096;
/// How deeply expressions may nest.
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Value(serde_json::Value),
    Open,
    Close,
    OpenBracket,
    CloseBracket,
}

fn tokenize(input: &str) -> Result<Vec<(usize, Token)>, FilterError> {
    let bytes = input.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                tokens.push((i, Token::Open));
                i += 1;
            }
            b')' => {
                tokens.push((i, Token::Close));
                i += 1;
            }
            b'[' => {
                tokens.push((i, Token::OpenBracket));
                i += 1;
            }
            b']' => {
                tokens.push((i, Token::CloseBracket));
                i += 1;
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                if i >= bytes.len() {
                    return Err(FilterError(format!("the string at {start} is not closed")));
                }
                i += 1;
                let value: String = serde_json::from_str(&input[start..i]).map_err(|_| {
                    FilterError(format!("the string at {start} is not a JSON string"))
                })?;
                tokens.push((start, Token::Value(serde_json::Value::String(value))));
            }
            _ => {
                let start = i;
                while i < bytes.len() && !b" \t\n\r()[]\"".contains(&bytes[i]) {
                    i += 1;
                }
                let word = &input[start..i];
                let token = match word.to_ascii_lowercase().as_str() {
                    "true" => Token::Value(serde_json::Value::Bool(true)),
                    "false" => Token::Value(serde_json::Value::Bool(false)),
                    "null" => Token::Value(serde_json::Value::Null),
                    _ if word.starts_with(|c: char| c.is_ascii_digit() || c == '-') => {
                        let number: serde_json::Number = word.parse().map_err(|_| {
                            FilterError(format!("{word:?} at {start} is not a number"))
                        })?;
                        Token::Value(serde_json::Value::Number(number))
                    }
                    _ => Token::Word(word.to_owned()),
                };
                tokens.push((start, token));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(_, t)| t)
    }

    fn position(&self) -> String {
        self.tokens
            .get(self.at)
            .map_or("the end".to_owned(), |(p, _)| format!("position {p}"))
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn expect(&mut self, token: &Token, what: &str) -> Result<(), FilterError> {
        if self.peek() == Some(token) {
            self.at += 1;
            Ok(())
        } else {
            Err(FilterError(format!(
                "expected {what} at {}",
                self.position()
            )))
        }
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.at += 1;
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.at += 1;
            left = Filter::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(FilterError("the filter nests too deeply".into()));
        }
        let result = self.unary_inner();
        self.depth -= 1;
        result
    }

    fn unary_inner(&mut self) -> Result<Filter, FilterError> {
        if self.keyword("not") {
            self.at += 1;
            self.expect(&Token::Open, "'(' after not")?;
            let inner = self.or()?;
            self.expect(&Token::Close, "')'")?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.peek() == Some(&Token::Open) {
            self.at += 1;
            let inner = self.or()?;
            self.expect(&Token::Close, "')'")?;
            return Ok(inner);
        }
        let Some(Token::Word(word)) = self.peek().cloned() else {
            return Err(FilterError(format!(
                "expected an attribute at {}",
                self.position()
            )));
        };
        self.at += 1;
        let path = AttrPath::parse(&word)?;
        if self.peek() == Some(&Token::OpenBracket) {
            self.at += 1;
            let inner = self.or()?;
            self.expect(&Token::CloseBracket, "']'")?;
            return Ok(Filter::ValuePath {
                path,
                filter: Box::new(inner),
            });
        }
        let Some(Token::Word(op)) = self.peek().cloned() else {
            return Err(FilterError(format!(
                "expected an operator after {word} at {}",
                self.position()
            )));
        };
        self.at += 1;
        if op.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let op = CompareOp::parse(&op)
            .ok_or_else(|| FilterError(format!("{op:?} is not a comparison operator")))?;
        let Some(Token::Value(value)) = self.peek().cloned() else {
            return Err(FilterError(format!(
                "expected a value (a JSON string, number, true, false or null) at {}",
                self.position()
            )));
        };
        self.at += 1;
        Ok(Filter::Compare { path, op, value })
    }
}

/// Parses a `filter` query parameter.
pub fn parse(input: &str) -> Result<Filter, FilterError> {
    if input.len() > MAX_FILTER_LEN {
        return Err(FilterError(format!(
            "the filter is longer than {MAX_FILTER_LEN} bytes"
        )));
    }
    let mut parser = Parser {
        tokens: tokenize(input)?,
        at: 0,
        depth: 0,
    };
    let filter = parser.or()?;
    if parser.at != parser.tokens.len() {
        return Err(FilterError(format!(
            "unexpected input at {}",
            parser.position()
        )));
    }
    Ok(filter)
}

/// A PATCH operation's `path`: an attribute, or `attr[filter]` with an optional
/// `.sub` after it.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    /// The sub-attribute after a value filter (`emails[type eq "work"].value`).
    pub sub_after_filter: Option<String>,
}

pub fn parse_patch_path(input: &str) -> Result<PatchPath, FilterError> {
    let input = input.trim();
    let Some(open) = input.find('[') else {
        return Ok(PatchPath {
            attr: AttrPath::parse(input)?,
            filter: None,
            sub_after_filter: None,
        });
    };
    let close = input
        .rfind(']')
        .ok_or_else(|| FilterError(format!("{input:?}: '[' is not closed")))?;
    let attr = AttrPath::parse(&input[..open])?;
    let filter = parse(&input[open + 1..close])?;
    let rest = &input[close + 1..];
    let sub_after_filter = match rest.strip_prefix('.') {
        Some(sub) => Some(AttrPath::parse(sub)?.name),
        None if rest.is_empty() => None,
        None => return Err(FilterError(format!("{input:?}: unexpected {rest:?}"))),
    };
    Ok(PatchPath {
        attr,
        filter: Some(filter),
        sub_after_filter,
    })
}

/// The value at a (relative) attribute path of a JSON object, matching names without
/// regard to case as SCIM does.
pub fn get<'a>(object: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    object
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn compare_values(actual: &serde_json::Value, op: CompareOp, expected: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (actual, expected) {
        (J::String(a), J::String(e)) => {
            let (a, e) = (a.to_lowercase(), e.to_lowercase());
            match op {
                CompareOp::Eq => a == e,
                CompareOp::Ne => a != e,
                CompareOp::Co => a.contains(&e),
                CompareOp::Sw => a.starts_with(&e),
                CompareOp::Ew => a.ends_with(&e),
                CompareOp::Gt => a > e,
                CompareOp::Ge => a >= e,
                CompareOp::Lt => a < e,
                CompareOp::Le => a <= e,
            }
        }
        (J::Bool(a), J::Bool(e)) => match op {
            CompareOp::Eq => a == e,
            CompareOp::Ne => a != e,
            _ => false,
        },
        (J::Number(a), J::Number(e)) => {
            let (Some(a), Some(e)) = (a.as_f64(), e.as_f64()) else {
                return false;
            };
            match op {
                CompareOp::Eq => a == e,
                CompareOp::Ne => a != e,
                CompareOp::Gt => a > e,
                CompareOp::Ge => a >= e,
                CompareOp::Lt => a < e,
                CompareOp::Le => a <= e,
                _ => false,
            }
        }
        (J::Null, _) => op == CompareOp::Ne && !expected.is_null(),
        _ => op == CompareOp::Ne,
    }
}

/// Whether `filter` holds of `value` (an element of a multi-valued attribute, or a
/// resource), for PATCH value paths.
pub fn matches(filter: &Filter, value: &serde_json::Value) -> bool {
    let at = |path: &AttrPath| -> Option<&serde_json::Value> {
        let v = get(value, &path.name)?;
        match &path.sub {
            Some(sub) => get(v, sub),
            None => Some(v),
        }
    };
    match filter {
        Filter::And(a, b) => matches(a, value) && matches(b, value),
        Filter::Or(a, b) => matches(a, value) || matches(b, value),
        Filter::Not(a) => !matches(a, value),
        Filter::Present(path) => at(path).is_some_and(|v| {
            !(v.is_null()
                || v.as_str() == Some("")
                || v.as_array().is_some_and(Vec::is_empty)
                || v.as_object().is_some_and(serde_json::Map::is_empty))
        }),
        Filter::Compare {
            path,
            op,
            value: expected,
        } => match at(path) {
            Some(serde_json::Value::Array(items)) => {
                items.iter().any(|i| compare_values(i, *op, expected))
            }
            Some(actual) => compare_values(actual, *op, expected),
            None => *op == CompareOp::Ne && !expected.is_null(),
        },
        Filter::ValuePath { path, filter } => at(path)
            .and_then(serde_json::Value::as_array)
            .is_some_and(|items| items.iter().any(|i| matches(filter, i))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(s: &str) -> AttrPath {
        AttrPath::parse(s).unwrap()
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        let f =
            parse(r#"userName eq "a" or name.givenName sw "B" and not (active eq false)"#).unwrap();
        let Filter::Or(left, right) = f else {
            panic!("or at the top: {f:?}")
        };
        assert_eq!(
            *left,
            Filter::Compare {
                path: path("userName"),
                op: CompareOp::Eq,
                value: json!("a")
            }
        );
        let Filter::And(_, not) = *right else {
            panic!("and below or")
        };
        assert!(matches!(*not, Filter::Not(_)));
    }

    #[test]
    fn operators_and_keywords_are_case_insensitive() {
        assert_eq!(
            parse(r#"userName EQ "a" AND title Pr"#).unwrap(),
            Filter::And(
                Box::new(Filter::Compare {
                    path: path("userName"),
                    op: CompareOp::Eq,
                    value: json!("a")
                }),
                Box::new(Filter::Present(path("title")))
            )
        );
    }

    #[test]
    fn a_urn_qualified_path_splits_at_its_last_colon() {
        let p = path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department");
        assert_eq!(
            p.urn.as_deref(),
            Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
        );
        assert_eq!(p.name, "department");
        let p = path("urn:ietf:params:scim:schemas:core:2.0:User:name.givenName");
        assert_eq!(
            (p.name.as_str(), p.sub.as_deref()),
            ("name", Some("givenName"))
        );
    }

    #[test]
    fn value_paths_strings_with_escapes_numbers_and_dates_parse() {
        let f = parse(r#"emails[type eq "work" and value co "@ex\"ample.com"] and meta.lastModified gt "2011-05-13T04:42:34Z" and x lt 10"#).unwrap();
        let Filter::And(first, _) = f else { panic!() };
        let Filter::And(value_path, _) = *first else {
            panic!()
        };
        let Filter::ValuePath { path: p, filter } = *value_path else {
            panic!("a value path")
        };
        assert_eq!(p.name, "emails");
        assert!(matches(
            &filter,
            &json!({"type": "work", "value": "a@ex\"ample.com"})
        ));
    }

    #[test]
    fn malformed_filters_are_refused_with_where() {
        for bad in [
            "",
            "userName",
            r#"userName eq"#,
            r#"userName xx "a""#,
            r#"userName eq "a" and"#,
            r#"(userName eq "a""#,
            r#"userName eq "unclosed"#,
            r#"emails[type eq "work""#,
            r#"userName eq "a" extra"#,
            r#"1abc eq "a""#,
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
        let deep = format!("{}userName pr{}", "(".repeat(100), ")".repeat(100));
        assert!(parse(&deep).is_err());
        assert!(parse(&"a".repeat(MAX_FILTER_LEN + 1)).is_err());
    }

    #[test]
    fn patch_paths_take_a_filter_and_a_sub_attribute_after_it() {
        let p = parse_patch_path(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(p.attr.name, "emails");
        assert_eq!(p.sub_after_filter.as_deref(), Some("value"));
        let p = parse_patch_path(r#"members[value eq "2819c223"]"#).unwrap();
        assert!(p.filter.is_some() && p.sub_after_filter.is_none());
        let p = parse_patch_path("name.familyName").unwrap();
        assert_eq!(p.attr.sub.as_deref(), Some("familyName"));
        assert!(parse_patch_path(r#"emails[type eq "work"]x"#).is_err());
        assert!(parse_patch_path("").is_err());
    }

    #[test]
    fn evaluation_compares_strings_without_case_and_handles_absence() {
        let v = json!({"type": "Work", "primary": true, "value": "A@x.org"});
        assert!(matches(&parse(r#"type eq "work""#).unwrap(), &v));
        assert!(matches(&parse("primary eq true").unwrap(), &v));
        assert!(!matches(&parse("display pr").unwrap(), &v));
        assert!(matches(&parse(r#"display ne "x""#).unwrap(), &v));
        assert!(matches(&parse(r#"value ew "@X.ORG""#).unwrap(), &v));
    }
}
