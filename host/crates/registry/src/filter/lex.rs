//! The tokens of a `filterQuery`, as upstream's lexer cuts them: identifiers, backtick-escaped
//! names, strings in single or double quotes (backslash escapes), integers and floats (with an
//! optional sign), the comparison operators, `( ) , .`, and `--` comments to the end of a line.

use super::FilterError;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    /// A name in backticks, unescaped.
    Escaped(String),
    Str(String),
    Int(i64),
    Float(f64),
    /// `= != <> > < >= <=`
    Op(&'static str),
    LParen,
    RParen,
    Comma,
    Dot,
    /// `AND OR LIKE ILIKE IN TRUE FALSE`, in upper case whatever the input's case.
    Keyword(&'static str),
}

/// A token and where it starts (a character index, from 0).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: usize,
}

const KEYWORDS: &[&str] = &["AND", "OR", "LIKE", "ILIKE", "IN", "TRUE", "FALSE"];
const OPERATORS: &[&str] = &[">=", "<=", "!=", "<>", "=", ">", "<"];

/// The tokens of `input`, or the first place that is no token.
pub(crate) fn tokens(input: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let tok = if c.is_whitespace() {
            i += 1;
            continue;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' && chars[i] != '\r' {
                i += 1;
            }
            continue;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let word = take_while(&chars, &mut i, |c| c.is_ascii_alphanumeric() || c == '_');
            let upper = word.to_ascii_uppercase();
            match KEYWORDS.iter().find(|k| **k == upper) {
                Some(k) => Tok::Keyword(k),
                None => Tok::Ident(word),
            }
        } else if starts_number(&chars, i) {
            number(&chars, &mut i)?
        } else if c == '\'' || c == '"' {
            Tok::Str(quoted(&chars, &mut i, c, "string")?)
        } else if c == '`' {
            Tok::Escaped(quoted(&chars, &mut i, c, "name")?)
        } else if let Some(op) = operator(&chars, i) {
            i += op.len();
            Tok::Op(op)
        } else {
            i += 1;
            match c {
                '(' => Tok::LParen,
                ')' => Tok::RParen,
                ',' => Tok::Comma,
                '.' => Tok::Dot,
                _ => {
                    return Err(FilterError::at(
                        start,
                        format!("unexpected character `{c}`"),
                    ))
                }
            }
        };
        out.push(Token { tok, pos: start });
    }
    Ok(out)
}

fn take_while(chars: &[char], i: &mut usize, f: impl Fn(char) -> bool) -> String {
    let start = *i;
    while *i < chars.len() && f(chars[*i]) {
        *i += 1;
    }
    chars[start..*i].iter().collect()
}

fn operator(chars: &[char], i: usize) -> Option<&'static str> {
    OPERATORS.iter().copied().find(|op| {
        op.chars()
            .enumerate()
            .all(|(k, c)| chars.get(i + k) == Some(&c))
    })
}

/// A digit, a `.` before a digit, or a sign before either.
fn starts_number(chars: &[char], i: usize) -> bool {
    let digit_at = |k: usize| chars.get(k).is_some_and(char::is_ascii_digit);
    let unsigned = |k: usize| digit_at(k) || (chars.get(k) == Some(&'.') && digit_at(k + 1));
    match chars[i] {
        '-' | '+' => unsigned(i + 1),
        _ => unsigned(i),
    }
}

/// `[-+]? digits [. digits] [e [-+] digits]`, or one starting at the `.`.
fn number(chars: &[char], i: &mut usize) -> Result<Tok, FilterError> {
    let start = *i;
    if matches!(chars[*i], '-' | '+') {
        *i += 1;
    }
    take_while(chars, i, |c| c.is_ascii_digit());
    let mut float = false;
    if chars.get(*i) == Some(&'.') && chars.get(*i + 1).is_some_and(char::is_ascii_digit) {
        float = true;
        *i += 1;
        take_while(chars, i, |c| c.is_ascii_digit());
    }
    if matches!(chars.get(*i), Some('e' | 'E')) {
        let mut k = *i + 1;
        if matches!(chars.get(k), Some('-' | '+')) {
            k += 1;
        }
        if chars.get(k).is_some_and(char::is_ascii_digit) {
            float = true;
            *i = k;
            take_while(chars, i, |c| c.is_ascii_digit());
        }
    }
    let text: String = chars[start..*i].iter().collect();
    let bad = || FilterError::at(start, format!("number `{text}` is out of range"));
    if float {
        let x = text.parse::<f64>().map_err(|_| bad())?;
        if !x.is_finite() {
            return Err(bad());
        }
        Ok(Tok::Float(x))
    } else {
        Ok(Tok::Int(text.parse::<i64>().map_err(|_| bad())?))
    }
}

/// The text between `quote` and its match, a backslash taking the next character as it is.
fn quoted(chars: &[char], i: &mut usize, quote: char, what: &str) -> Result<String, FilterError> {
    let start = *i;
    *i += 1;
    let mut text = String::new();
    while let Some(&c) = chars.get(*i) {
        *i += 1;
        if c == quote {
            return Ok(text);
        }
        if c == '\\' {
            let Some(&next) = chars.get(*i) else { break };
            *i += 1;
            text.push(next);
        } else {
            text.push(c);
        }
    }
    Err(FilterError::at(start, format!("unterminated {what}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokens(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn tokens_as_upstream_cuts_them() {
        assert_eq!(
            toks("name='a\\'b' and x.double_value >= -1.5e2 -- c\n OR `a.b` IN (1,\"x\")"),
            vec![
                Tok::Ident("name".into()),
                Tok::Op("="),
                Tok::Str("a'b".into()),
                Tok::Keyword("AND"),
                Tok::Ident("x".into()),
                Tok::Dot,
                Tok::Ident("double_value".into()),
                Tok::Op(">="),
                Tok::Float(-150.0),
                Tok::Keyword("OR"),
                Tok::Escaped("a.b".into()),
                Tok::Keyword("IN"),
                Tok::LParen,
                Tok::Int(1),
                Tok::Comma,
                Tok::Str("x".into()),
                Tok::RParen,
            ]
        );
        assert_eq!(
            toks("a<>.5"),
            vec![Tok::Ident("a".into()), Tok::Op("<>"), Tok::Float(0.5)]
        );
    }

    #[test]
    fn bad_input_is_placed() {
        for (input, pos) in [
            ("a = 'x", 4),
            ("a # 1", 2),
            ("`x", 0),
            ("a = 99999999999999999999", 4),
        ] {
            assert_eq!(tokens(input).unwrap_err().pos, pos, "{input}");
        }
    }
}
