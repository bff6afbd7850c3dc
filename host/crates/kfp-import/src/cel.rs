//! The CEL that KFP writes into `triggerPolicy.condition` for `dsl.If`/`Elif`/`Else`:
//! comparisons of a group's input parameters with literals, negated (`!(...)`) and joined with
//! `&&` (`||` is read too). Operands are `inputs.parameter_values['NAME']`, possibly cast with
//! `int(...)` or `double(...)`, or literals (`'text'`, numbers, `true`, `false`).
//! (kfp `compiler/pipeline_spec_builder.py`, `_single_binary_operation_to_cel_condition`.)

use weft_spec::pipeline::Op;

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Cmp(Operand, Op, Operand),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    /// `inputs.parameter_values['NAME']`: the group's input NAME.
    Input(String),
    Literal(serde_json::Value),
}

/// Parses `text`; the error says what was expected where.
pub fn parse(text: &str) -> Result<Expr, String> {
    let mut p = Parser { s: text, pos: 0 };
    let e = p.or()?;
    p.skip_ws();
    if p.pos != p.s.len() {
        return Err(p.expected("the end of the condition"));
    }
    Ok(e)
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.s[self.pos..]
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.s.len() - trimmed.len();
    }

    /// Consumes `token` (after blanks) if it is next.
    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn expected(&self, what: &str) -> String {
        let at: String = self.rest().chars().take(30).collect();
        if at.is_empty() {
            format!("expected {what} at the end")
        } else {
            format!("expected {what} at `{at}`")
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut terms = vec![self.and()?];
        while self.eat("||") {
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 {
            terms.pop().unwrap()
        } else {
            Expr::Or(terms)
        })
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut terms = vec![self.unary()?];
        while self.eat("&&") {
            terms.push(self.unary()?);
        }
        Ok(if terms.len() == 1 {
            terms.pop().unwrap()
        } else {
            Expr::And(terms)
        })
    }

    fn unary(&mut self) -> Result<Expr, String> {
        self.skip_ws();
        if self.rest().starts_with('!') && !self.rest().starts_with("!=") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.eat("(") {
            let e = self.or()?;
            if !self.eat(")") {
                return Err(self.expected("`)`"));
            }
            return Ok(e);
        }
        let left = self.operand()?;
        let op = self.op()?;
        let right = self.operand()?;
        Ok(Expr::Cmp(left, op, right))
    }

    fn op(&mut self) -> Result<Op, String> {
        // Two-character operators first.
        for (token, op) in [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
        ] {
            if self.eat(token) {
                return Ok(op);
            }
        }
        Err(self.expected("a comparison (==, !=, <, <=, >, >=)"))
    }

    fn operand(&mut self) -> Result<Operand, String> {
        self.skip_ws();
        for cast in ["int(", "double(", "string(", "bool("] {
            if self.eat(cast) {
                let inner = self.operand()?;
                if !self.eat(")") {
                    return Err(self.expected("`)`"));
                }
                return Ok(match inner {
                    // A cast literal is KFP's type promotion of a literal it wrote itself.
                    Operand::Literal(v) if cast == "double(" => {
                        Operand::Literal(v.as_f64().map(serde_json::Value::from).unwrap_or(v))
                    }
                    other => other,
                });
            }
        }
        if self.eat("inputs.parameter_values[") {
            let name = self.string()?;
            if !self.eat("]") {
                return Err(self.expected("`]`"));
            }
            return Ok(Operand::Input(name));
        }
        if self.rest().starts_with('\'') || self.rest().starts_with('"') {
            return Ok(Operand::Literal(serde_json::Value::String(self.string()?)));
        }
        if self.eat("true") {
            return Ok(Operand::Literal(true.into()));
        }
        if self.eat("false") {
            return Ok(Operand::Literal(false.into()));
        }
        self.number()
    }

    /// A quoted string, `'...'` or `"..."`, with backslash escapes.
    fn string(&mut self) -> Result<String, String> {
        self.skip_ws();
        let Some(quote) = self
            .rest()
            .chars()
            .next()
            .filter(|c| *c == '\'' || *c == '"')
        else {
            return Err(self.expected("a quoted string"));
        };
        let mut out = String::new();
        let mut chars = self.rest().char_indices().skip(1);
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, e)) => out.push(e),
                    None => break,
                },
                c if c == quote => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                c => out.push(c),
            }
        }
        Err(self.expected("a closing quote"))
    }

    fn number(&mut self) -> Result<Operand, String> {
        self.skip_ws();
        let len = self
            .rest()
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E')))
            .unwrap_or(self.rest().len());
        let text = &self.rest()[..len];
        let value = if let Ok(i) = text.parse::<i64>() {
            serde_json::Value::from(i)
        } else if let Some(f) = text.parse::<f64>().ok().filter(|f| f.is_finite()) {
            serde_json::Value::from(f)
        } else {
            return Err(self.expected("an operand (inputs.parameter_values[...] or a literal)"));
        };
        self.pos += len;
        Ok(Operand::Literal(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(n: &str) -> Operand {
        Operand::Input(n.into())
    }
    fn lit(v: serde_json::Value) -> Operand {
        Operand::Literal(v)
    }

    #[test]
    fn reads_what_kfp_writes() {
        assert_eq!(
            parse("inputs.parameter_values['pipelinechannel--summarize-total'] > 10.0").unwrap(),
            Expr::Cmp(
                input("pipelinechannel--summarize-total"),
                Op::Gt,
                lit(json!(10.0))
            )
        );
        assert_eq!(
            parse("int(inputs.parameter_values['pipelinechannel--n']) > 2").unwrap(),
            Expr::Cmp(input("pipelinechannel--n"), Op::Gt, lit(json!(2)))
        );
        assert_eq!(
            parse("inputs.parameter_values['pipelinechannel--flag'] == true").unwrap(),
            Expr::Cmp(input("pipelinechannel--flag"), Op::Eq, lit(json!(true)))
        );
        // An Elif: the earlier branch negated, then its own.
        let elif = "!(inputs.parameter_values['pipelinechannel--flip-Output'] == 'heads') \
                    && inputs.parameter_values['pipelinechannel--flip-Output'] == 'tails'";
        assert_eq!(
            parse(elif).unwrap(),
            Expr::And(vec![
                Expr::Not(Box::new(Expr::Cmp(
                    input("pipelinechannel--flip-Output"),
                    Op::Eq,
                    lit(json!("heads"))
                ))),
                Expr::Cmp(
                    input("pipelinechannel--flip-Output"),
                    Op::Eq,
                    lit(json!("tails"))
                ),
            ])
        );
        assert_eq!(
            parse("double(int(inputs.parameter_values['a'])) <= double(3)").unwrap(),
            Expr::Cmp(input("a"), Op::Le, lit(json!(3.0)))
        );
        assert_eq!(
            parse("'x' != inputs.parameter_values['a'] || inputs.parameter_values['b'] < -1.5")
                .unwrap(),
            Expr::Or(vec![
                Expr::Cmp(lit(json!("x")), Op::Ne, input("a")),
                Expr::Cmp(input("b"), Op::Lt, lit(json!(-1.5))),
            ])
        );
    }

    #[test]
    fn says_what_it_expected() {
        let e = parse("inputs.parameter_values['a'] ~ 3").unwrap_err();
        assert!(e.contains("a comparison") && e.contains("~ 3"), "{e}");
        let e = parse("size(inputs.parameter_values['a']) > 3").unwrap_err();
        assert!(e.contains("an operand"), "{e}");
        let e = parse("inputs.parameter_values['a'] == 'x").unwrap_err();
        assert!(e.contains("closing quote"), "{e}");
        let e = parse("(inputs.parameter_values['a'] == 1").unwrap_err();
        assert!(e.contains("`)`"), "{e}");
    }
}
