//! The grammar of a `filterQuery` (upstream's, `internal/platform/db/filter/parser.go`):
//!
//! ```text
//! expr       := and ("OR" and)*
//! and        := term ("AND" term)*
//! term       := "(" expr ")" | comparison
//! comparison := property op value
//! property   := (`escaped` | ident ("." ident)*) ["." (string_value|double_value|int_value|bool_value)]
//! op         := = | != | <> | > | < | >= | <= | LIKE | ILIKE | IN
//! value      := string | number | TRUE | FALSE | "(" [single ("," single)*] ")"
//! ```
//!
//! By recursive descent, nesting bounded by [`MAX_DEPTH`] and comparisons by
//! [`MAX_CONDITIONS`], so no input can exhaust the stack or build an unbounded query.

use super::lex::{Tok, Token};
use super::FilterError;

/// How deep parentheses may nest.
pub const MAX_DEPTH: usize = 16;
/// How many comparisons one query may have.
pub const MAX_CONDITIONS: usize = 100;
/// How many values an `IN` list may have.
pub const MAX_LIST: usize = 100;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Cmp(Cmp),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Like,
    ILike,
    In,
}

/// Which value of a custom property (`prop.int_value`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ValueType {
    String,
    Double,
    Int,
    Bool,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Lit {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    List(Vec<Lit>),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Cmp {
    /// The property's name, dotted segments joined with `.`.
    pub name: String,
    pub value_type: Option<ValueType>,
    pub op: Op,
    pub value: Lit,
    /// Where the property starts.
    pub pos: usize,
}

struct Parser {
    toks: Vec<Token>,
    at: usize,
    /// The input's length in characters, where "the end" is.
    end: usize,
    conditions: usize,
}

/// The expression of the tokens of an input `end` characters long.
pub(crate) fn parse(toks: Vec<Token>, end: usize) -> Result<Expr, FilterError> {
    let mut p = Parser {
        toks,
        at: 0,
        end,
        conditions: 0,
    };
    let e = p.or(0)?;
    match p.peek() {
        None => Ok(e),
        Some(t) => Err(FilterError::at(
            t.pos,
            format!("unexpected {}", describe(&t.tok)),
        )),
    }
}

/// The value type a name's last segment picks (`string_value`, ...), in any case.
fn value_type_of(segment: &str) -> Option<ValueType> {
    match segment.to_ascii_lowercase().as_str() {
        "string_value" => Some(ValueType::String),
        "double_value" => Some(ValueType::Double),
        "int_value" => Some(ValueType::Int),
        "bool_value" => Some(ValueType::Bool),
        _ => None,
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("name `{s}`"),
        Tok::Escaped(s) => format!("name `{s}`"),
        Tok::Str(s) => format!("string {s:?}"),
        Tok::Int(n) => format!("number {n}"),
        Tok::Float(x) => format!("number {x}"),
        Tok::Op(o) => format!("`{o}`"),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Dot => "`.`".into(),
        Tok::Keyword(k) => format!("`{k}`"),
    }
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek().is_some_and(|t| t.tok == *tok) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// An error at the next token (or the end) saying what was expected there.
    fn expected(&self, what: &str) -> FilterError {
        match self.peek() {
            Some(t) => FilterError::at(
                t.pos,
                format!("expected {what}, found {}", describe(&t.tok)),
            ),
            None => FilterError::at(self.end, format!("expected {what}, found the end")),
        }
    }

    fn or(&mut self, depth: usize) -> Result<Expr, FilterError> {
        let mut terms = vec![self.and(depth)?];
        while self.eat(&Tok::Keyword("OR")) {
            terms.push(self.and(depth)?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::Or(terms)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Expr, FilterError> {
        let mut terms = vec![self.term(depth)?];
        while self.eat(&Tok::Keyword("AND")) {
            terms.push(self.term(depth)?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::And(terms)
        })
    }

    fn term(&mut self, depth: usize) -> Result<Expr, FilterError> {
        let Some(t) = self.peek() else {
            return Err(self.expected("a comparison"));
        };
        if t.tok != Tok::LParen {
            return self.comparison().map(Expr::Cmp);
        }
        if depth >= MAX_DEPTH {
            return Err(FilterError::at(
                t.pos,
                format!("parentheses nest deeper than {MAX_DEPTH}"),
            ));
        }
        self.at += 1;
        let e = self.or(depth + 1)?;
        if !self.eat(&Tok::RParen) {
            return Err(self.expected("`)`"));
        }
        Ok(e)
    }

    fn comparison(&mut self) -> Result<Cmp, FilterError> {
        let pos = self.peek().map_or(self.end, |t| t.pos);
        self.conditions += 1;
        if self.conditions > MAX_CONDITIONS {
            return Err(FilterError::at(
                pos,
                format!("more than {MAX_CONDITIONS} comparisons"),
            ));
        }
        let (name, value_type) = self.property()?;
        let op = self.op()?;
        let value = if op == Op::In {
            self.list()?
        } else {
            self.single()?
        };
        Ok(Cmp {
            name,
            value_type,
            op,
            value,
            pos,
        })
    }

    fn property(&mut self) -> Result<(String, Option<ValueType>), FilterError> {
        let mut segments = match self.peek().map(|t| &t.tok) {
            Some(Tok::Escaped(s)) if !s.is_empty() => vec![s.clone()],
            Some(Tok::Ident(s)) => vec![s.clone()],
            _ => return Err(self.expected("a property name")),
        };
        let escaped = matches!(self.next().map(|t| t.tok), Some(Tok::Escaped(_)));
        while self.eat(&Tok::Dot) {
            match self.peek().map(|t| &t.tok) {
                Some(Tok::Ident(s)) if !escaped || value_type_of(s).is_some() => {
                    segments.push(s.clone())
                }
                _ if escaped => return Err(self.expected("a value type after an escaped name")),
                _ => return Err(self.expected("a name after `.`")),
            }
            self.at += 1;
        }
        let value_type = match segments.last() {
            Some(last) if segments.len() > 1 => value_type_of(last),
            _ => None,
        };
        if value_type.is_some() {
            segments.pop();
        }
        Ok((segments.join("."), value_type))
    }

    fn op(&mut self) -> Result<Op, FilterError> {
        let op = match self.peek().map(|t| &t.tok) {
            Some(Tok::Op("=")) => Op::Eq,
            Some(Tok::Op("!=" | "<>")) => Op::Ne,
            Some(Tok::Op(">")) => Op::Gt,
            Some(Tok::Op("<")) => Op::Lt,
            Some(Tok::Op(">=")) => Op::Ge,
            Some(Tok::Op("<=")) => Op::Le,
            Some(Tok::Keyword("LIKE")) => Op::Like,
            Some(Tok::Keyword("ILIKE")) => Op::ILike,
            Some(Tok::Keyword("IN")) => Op::In,
            _ => return Err(self.expected("an operator (= != <> > < >= <= LIKE ILIKE IN)")),
        };
        self.at += 1;
        Ok(op)
    }

    fn single(&mut self) -> Result<Lit, FilterError> {
        let lit = match self.peek().map(|t| &t.tok) {
            Some(Tok::Str(s)) => Lit::Str(s.clone()),
            Some(Tok::Int(n)) => Lit::Int(*n),
            Some(Tok::Float(x)) => Lit::Float(*x),
            Some(Tok::Keyword("TRUE")) => Lit::Bool(true),
            Some(Tok::Keyword("FALSE")) => Lit::Bool(false),
            _ => return Err(self.expected("a value (a string, a number, true or false)")),
        };
        self.at += 1;
        Ok(lit)
    }

    fn list(&mut self) -> Result<Lit, FilterError> {
        if !self.eat(&Tok::LParen) {
            return Err(self.expected("`(` to start the list of IN"));
        }
        let mut values = Vec::new();
        if self.eat(&Tok::RParen) {
            return Ok(Lit::List(values));
        }
        loop {
            if values.len() == MAX_LIST {
                return Err(self.expected(&format!("at most {MAX_LIST} values in a list")));
            }
            values.push(self.single()?);
            if self.eat(&Tok::RParen) {
                return Ok(Lit::List(values));
            }
            if !self.eat(&Tok::Comma) {
                return Err(self.expected("`,` or `)`"));
            }
        }
    }
}
