//! A parsed `filterQuery` as a condition on the store's columns, in the store's SQL dialect,
//! every value bound as a parameter. The entity's own fields map to columns (`id`, `name`,
//! ...) or to their place in `body_json`; any other name is a custom property, read from
//! `body_json -> customProperties -> name -> <type>_value` (the type given, or taken from the
//! literal: a number matches an int or a double property).
//!
//! SQLite reads JSON with `json_extract` and matches `LIKE` with `GLOB` (case-sensitive, as
//! upstream's MySQL does). PostgreSQL reads JSONB with `->`/`->>` and the registry's
//! `weft_registry_int`/`_num`/`_bool` (NULL for a value of another type, never an error),
//! matches with `LIKE`/`ILIKE` with no escape character, and compares a field whose type
//! follows the literal (a metric's `value`) one literal at a time, its types being strict.

use super::parse::{Cmp, Expr, Lit, Op, ValueType};
use super::FilterError;
use weft_store::{RegistryDialect as Dialect, RegistryValue, RegistryWhere};

/// How a field's values compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ty {
    Text,
    /// An integer (ids and times: JSON strings in bodies, integers in columns).
    Int,
    /// A JSON number.
    Num,
    Bool,
    /// Whatever the literal is (a metric's `value` is a number, a parameter's text).
    Any,
}

/// Where an entity's field is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    /// A column of the row.
    Col(&'static str, Ty),
    /// A member of `body_json`, by its JSON name.
    Json(&'static str, Ty),
    /// A JSON list (`language`, `tasks`): `=` and `IN` ask whether it holds the value.
    List(&'static str),
}

/// The fields every entity has.
pub(crate) fn common_field(name: &str) -> Option<Field> {
    Some(match name {
        "id" => Field::Col("id", Ty::Int),
        "name" => Field::Col("name", Ty::Text),
        "externalId" => Field::Col("external_id", Ty::Text),
        "createTimeSinceEpoch" => Field::Col("created_ms", Ty::Int),
        "lastUpdateTimeSinceEpoch" => Field::Col("updated_ms", Ty::Int),
        "description" => Field::Json("description", Ty::Text),
        _ => return None,
    })
}

/// A member of `body_json` that holds an integer (or a string of one), as an integer.
pub(crate) fn json_int(path: &str, dialect: Dialect) -> String {
    match dialect {
        Dialect::Sqlite => format!("CAST(json_extract(body_json, '$.{path}') AS INTEGER)"),
        Dialect::Postgres => format!("weft_registry_int(body_json -> '{path}')"),
    }
}

/// The condition for `e` in `dialect`, the entity's fields looked up by `field`.
pub(crate) fn condition(
    e: &Expr,
    field: &dyn Fn(&str) -> Option<Field>,
    dialect: Dialect,
) -> Result<RegistryWhere, FilterError> {
    let mut w = RegistryWhere::default();
    write(e, field, dialect, &mut w)?;
    Ok(w)
}

fn write(
    e: &Expr,
    field: &dyn Fn(&str) -> Option<Field>,
    dialect: Dialect,
    w: &mut RegistryWhere,
) -> Result<(), FilterError> {
    let (terms, joiner) = match e {
        Expr::Cmp(c) if dialect == Dialect::Postgres => return pg::comparison(c, field, w),
        Expr::Cmp(c) => return comparison(c, field, w),
        Expr::Or(terms) => (terms, " OR "),
        Expr::And(terms) => (terms, " AND "),
    };
    w.sql.push('(');
    for (i, t) in terms.iter().enumerate() {
        if i > 0 {
            w.sql.push_str(joiner);
        }
        write(t, field, dialect, w)?;
    }
    w.sql.push(')');
    Ok(())
}

fn comparison(
    c: &Cmp,
    field: &dyn Fn(&str) -> Option<Field>,
    w: &mut RegistryWhere,
) -> Result<(), FilterError> {
    let known = c.value_type.is_none().then(|| field(&c.name)).flatten();
    let (expr, ty) = match known {
        Some(Field::List(path)) => return list_member(c, path, w),
        Some(Field::Col(col, ty)) => (col.to_string(), ty),
        Some(Field::Json(path, Ty::Int)) => (
            format!("CAST(json_extract(body_json, '$.{path}') AS INTEGER)"),
            Ty::Int,
        ),
        Some(Field::Json(path, ty)) => (format!("json_extract(body_json, '$.{path}')"), ty),
        None => custom(c, w)?,
    };
    check(c, ty)?;
    let values = match &c.value {
        Lit::List(values) => values.as_slice(),
        one => std::slice::from_ref(one),
    };
    let rendered = values
        .iter()
        .map(|v| bind(c, v, ty, true))
        .collect::<Result<Vec<_>, _>>()?;
    let marks = vec!["?"; rendered.len()].join(", ");
    let sql = match c.op {
        Op::In if rendered.is_empty() => "0".to_string(),
        Op::In => format!("{expr} IN ({marks})"),
        Op::Like => format!("{expr} GLOB ?"),
        Op::ILike => format!("lower({expr}) LIKE lower(?)"),
        op => format!("{expr} {} ?", symbol(op)),
    };
    w.sql.push_str(&sql);
    w.args.extend(rendered);
    Ok(())
}

pub(super) fn symbol(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "!=",
        Op::Gt => ">",
        Op::Lt => "<",
        Op::Ge => ">=",
        _ => "<=",
    }
}

/// The value type of a custom property: the one given, else the literal's (`None`: a number,
/// which matches an int or a double property); or an error for a name that cannot be one.
pub(super) fn custom_type(c: &Cmp) -> Result<Option<ValueType>, FilterError> {
    if c.name.contains(['"', '\\']) || c.name.chars().any(char::is_control) {
        return Err(FilterError::at(
            c.pos,
            format!(
                "property name `{}` has a quote, a backslash or a control character",
                c.name
            ),
        ));
    }
    let first = match &c.value {
        Lit::List(values) => values.first(),
        one => Some(one),
    };
    Ok(c.value_type.or(match first {
        Some(Lit::Str(_)) | None => Some(ValueType::String),
        Some(Lit::Bool(_)) => Some(ValueType::Bool),
        Some(Lit::Int(_) | Lit::Float(_)) => None,
        Some(Lit::List(_)) => None,
    }))
}

/// The expression of a custom property (its path bound before the comparison's values).
fn custom(c: &Cmp, w: &mut RegistryWhere) -> Result<(String, Ty), FilterError> {
    let value_type = custom_type(c)?;
    let path = |t: &str| format!("$.customProperties.\"{}\".{t}_value", c.name);
    let extract = "json_extract(body_json, ?)";
    let (sql, ty) = match value_type {
        Some(ValueType::String) => (extract.to_string(), Ty::Text),
        Some(ValueType::Bool) => (extract.to_string(), Ty::Bool),
        Some(ValueType::Double) => (extract.to_string(), Ty::Num),
        Some(ValueType::Int) => (format!("CAST({extract} AS INTEGER)"), Ty::Int),
        None => (
            format!("COALESCE({extract}, CAST({extract} AS INTEGER))"),
            Ty::Num,
        ),
    };
    match value_type {
        Some(ValueType::String) => w.args.push(path("string").into()),
        Some(ValueType::Bool) => w.args.push(path("bool").into()),
        Some(ValueType::Double) => w.args.push(path("double").into()),
        Some(ValueType::Int) => w.args.push(path("int").into()),
        None => w.args.extend([path("double").into(), path("int").into()]),
    }
    Ok((sql, ty))
}

/// `=`/`IN` on a JSON list: whether it holds the value (one of the values).
fn list_member(c: &Cmp, path: &str, w: &mut RegistryWhere) -> Result<(), FilterError> {
    if !matches!(c.op, Op::Eq | Op::In) {
        return Err(FilterError::at(
            c.pos,
            format!("`{}` is a list: only = and IN apply to it", c.name),
        ));
    }
    let values = match &c.value {
        Lit::List(values) => values.as_slice(),
        one => std::slice::from_ref(one),
    };
    let rendered = values
        .iter()
        .map(|v| bind(c, v, Ty::Text, true))
        .collect::<Result<Vec<_>, _>>()?;
    if rendered.is_empty() {
        w.sql.push('0');
        return Ok(());
    }
    let marks = vec!["?"; rendered.len()].join(", ");
    w.sql.push_str(&format!(
        "EXISTS (SELECT 1 FROM json_each(body_json, '$.{path}') WHERE value IN ({marks}))"
    ));
    w.args.extend(rendered);
    Ok(())
}

/// Whether `c`'s operator applies to a field of type `ty`.
pub(super) fn check(c: &Cmp, ty: Ty) -> Result<(), FilterError> {
    let ok = match c.op {
        Op::Like | Op::ILike => matches!(ty, Ty::Text | Ty::Any) && matches!(c.value, Lit::Str(_)),
        Op::Gt | Op::Lt | Op::Ge | Op::Le => ty != Ty::Bool,
        Op::Eq | Op::Ne | Op::In => true,
    };
    if ok {
        return Ok(());
    }
    let what = match ty {
        Ty::Text => "text (LIKE takes a string pattern)",
        Ty::Int => "an integer",
        Ty::Num => "a number",
        Ty::Bool => "a boolean",
        Ty::Any => "a value",
    };
    Err(FilterError::at(
        c.pos,
        format!("`{}` is {what}: the operator does not apply", c.name),
    ))
}

/// The parameter for `v` compared with a field of type `ty`; a `LIKE` pattern as a `GLOB`
/// one when `glob`.
pub(super) fn bind(c: &Cmp, v: &Lit, ty: Ty, glob: bool) -> Result<RegistryValue, FilterError> {
    let value = match (ty, v) {
        (Ty::Text | Ty::Any, Lit::Str(s)) if c.op == Op::Like && glob => {
            RegistryValue::Text(self::glob(s))
        }
        (Ty::Text | Ty::Any, Lit::Str(s)) => RegistryValue::Text(s.clone()),
        (Ty::Any, Lit::Int(n)) => RegistryValue::Int(*n),
        (Ty::Any, Lit::Float(x)) => RegistryValue::Real(*x),
        (Ty::Any | Ty::Bool, Lit::Bool(b)) => RegistryValue::Int(*b as i64),
        (Ty::Int, Lit::Int(n)) => RegistryValue::Int(*n),
        (Ty::Int, Lit::Str(s)) if s.parse::<i64>().is_ok() => {
            RegistryValue::Int(s.parse().unwrap_or_default())
        }
        (Ty::Num, Lit::Int(n)) => RegistryValue::Int(*n),
        (Ty::Num, Lit::Float(x)) => RegistryValue::Real(*x),
        _ => {
            let want = match ty {
                Ty::Text => "a string",
                Ty::Int => "an integer",
                Ty::Num => "a number",
                Ty::Bool | Ty::Any => "true or false",
            };
            return Err(FilterError::at(
                c.pos,
                format!("`{}` is compared with {want}, not {}", c.name, lit_text(v)),
            ));
        }
    };
    Ok(value)
}

fn lit_text(v: &Lit) -> String {
    match v {
        Lit::Str(s) => format!("{s:?}"),
        Lit::Int(n) => n.to_string(),
        Lit::Float(x) => x.to_string(),
        Lit::Bool(b) => b.to_string(),
        Lit::List(_) => "a list".into(),
    }
}

/// A LIKE pattern (`%` any run, `_` any one character; case matters) as a GLOB pattern.
pub(crate) fn glob(like: &str) -> String {
    let mut out = String::with_capacity(like.len());
    for c in like.chars() {
        match c {
            '%' => out.push('*'),
            '_' => out.push('?'),
            '*' => out.push_str("[*]"),
            '?' => out.push_str("[?]"),
            '[' => out.push_str("[[]"),
            c => out.push(c),
        }
    }
    out
}

/// The same in PostgreSQL's words.
mod pg {
    use super::*;

    /// Where a value of type `ty` is read from a JSONB value `j`, as SQL of that type.
    fn typed(j: &str, ty: Ty) -> String {
        match ty {
            Ty::Text | Ty::Any => format!("({j} #>> '{{}}')"),
            Ty::Int => format!("weft_registry_int({j})"),
            Ty::Num => format!("weft_registry_num({j})"),
            Ty::Bool => format!("weft_registry_bool({j})"),
        }
    }

    /// The SQL that reads a field as the type given.
    type Reader = Box<dyn Fn(Ty) -> String>;

    /// The type a literal compares as, for a field of type `Ty::Any`.
    fn literal_type(v: &Lit) -> Ty {
        match v {
            Lit::Str(_) | Lit::List(_) => Ty::Text,
            Lit::Int(_) | Lit::Float(_) => Ty::Num,
            Lit::Bool(_) => Ty::Bool,
        }
    }

    pub(super) fn comparison(
        c: &Cmp,
        field: &dyn Fn(&str) -> Option<Field>,
        w: &mut RegistryWhere,
    ) -> Result<(), FilterError> {
        let known = c.value_type.is_none().then(|| field(&c.name)).flatten();
        let values = match &c.value {
            Lit::List(values) => values.as_slice(),
            one => std::slice::from_ref(one),
        };
        // The expression (with its own parameters) of the field as a `ty`.
        let (expr, expr_args, ty): (Reader, Vec<RegistryValue>, Ty) = match known {
            Some(Field::List(path)) => return list_member(c, path, values, w),
            Some(Field::Col(col, ty)) => (Box::new(move |_| col.to_string()), vec![], ty),
            Some(Field::Json(path, ty)) => (
                Box::new(move |t| typed(&format!("(body_json -> '{path}')"), t)),
                vec![],
                ty,
            ),
            None => {
                let value_type = custom_type(c)?;
                let prop = "(body_json -> 'customProperties' -> ?";
                let name = RegistryValue::Text(c.name.clone());
                match value_type {
                    Some(ValueType::String) => (
                        Box::new(move |_| format!("{prop} ->> 'string_value')")),
                        vec![name],
                        Ty::Text,
                    ),
                    Some(ValueType::Bool) => (
                        Box::new(move |_| typed(&format!("{prop} -> 'bool_value')"), Ty::Bool)),
                        vec![name],
                        Ty::Bool,
                    ),
                    Some(ValueType::Double) => (
                        Box::new(move |_| typed(&format!("{prop} -> 'double_value')"), Ty::Num)),
                        vec![name],
                        Ty::Num,
                    ),
                    Some(ValueType::Int) => (
                        Box::new(move |_| typed(&format!("{prop} -> 'int_value')"), Ty::Int)),
                        vec![name],
                        Ty::Int,
                    ),
                    None => (
                        Box::new(move |_| {
                            format!(
                                "COALESCE({}, {})",
                                typed(&format!("{prop} -> 'double_value')"), Ty::Num),
                                typed(&format!("{prop} -> 'int_value')"), Ty::Int)
                            )
                        }),
                        vec![name.clone(), name],
                        Ty::Num,
                    ),
                }
            }
        };
        check(c, ty)?;
        let rendered = values
            .iter()
            .map(|v| bind(c, v, ty, false))
            .collect::<Result<Vec<_>, _>>()?;
        if rendered.is_empty() {
            w.sql.push_str("FALSE");
            return Ok(());
        }
        // Each value compared with the field read as the value's type (strict in PostgreSQL:
        // a text is never equal to a number); `IN` as the comparisons joined by OR.
        let one = |v: &Lit| {
            let e = expr(if ty == Ty::Any { literal_type(v) } else { ty });
            match c.op {
                Op::In => format!("{e} = ?"),
                Op::Like => format!("{e} LIKE ? ESCAPE ''"),
                Op::ILike => format!("{e} ILIKE ? ESCAPE ''"),
                op => format!("{e} {} ?", symbol(op)),
            }
        };
        let parts: Vec<String> = values.iter().map(one).collect();
        w.sql.push('(');
        w.sql.push_str(&parts.join(" OR "));
        w.sql.push(')');
        for r in rendered {
            w.args.extend(expr_args.iter().cloned());
            w.args.push(r);
        }
        Ok(())
    }

    /// `=`/`IN` on a JSON list: whether it holds the value (one of the values).
    fn list_member(
        c: &Cmp,
        path: &str,
        values: &[Lit],
        w: &mut RegistryWhere,
    ) -> Result<(), FilterError> {
        if !matches!(c.op, Op::Eq | Op::In) {
            return Err(FilterError::at(
                c.pos,
                format!("`{}` is a list: only = and IN apply to it", c.name),
            ));
        }
        let rendered = values
            .iter()
            .map(|v| bind(c, v, Ty::Text, false))
            .collect::<Result<Vec<_>, _>>()?;
        if rendered.is_empty() {
            w.sql.push_str("FALSE");
            return Ok(());
        }
        let one = format!("(body_json -> '{path}') @> jsonb_build_array(?::text)");
        w.sql.push('(');
        w.sql.push_str(&vec![one; rendered.len()].join(" OR "));
        w.sql.push(')');
        w.args.extend(rendered);
        Ok(())
    }
}
