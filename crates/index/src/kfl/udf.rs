//! The interpreter fallback of KFL queries: a part of a filter that has no
//! DataFusion equivalent (a macro with an arbitrary body, a map literal,
//! timestamp arithmetic, …) becomes a DataFusion scalar UDF that runs the
//! `trawl-kfl` interpreter on that sub-expression, batch by batch, over
//! only the columns it reads. Built by `super::Compiler`; everything the
//! interpreter accepts therefore runs in queries, with the same answers.
//!
//! Errors of the interpreter (a missing key, a division by zero) become
//! SQL NULL, as in the native translation, so `&&`, `||` and the final
//! filter treat them the same way whichever path computed them.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, DurationNanosecondArray, Float64Array,
    Int64Array, ListArray, StringArray, TimestampNanosecondArray, UInt64Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{
    DataType, DurationNanosecondType, Field, Float64Type, Int64Type, TimeUnit,
    TimestampNanosecondType, UInt64Type,
};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use trawl_kfl::{EvalContext, Record, Type, Value};

/// The time zone of timestamp columns (as in `crate::schema`).
const UTC: &str = "UTC";

/// The Arrow type a KFL value of type `ty` is returned as, when there is
/// one (maps and `dyn` have none: their parent is evaluated instead).
pub(super) fn arrow_of(ty: &Type) -> Option<DataType> {
    Some(match ty {
        Type::Bool => DataType::Boolean,
        Type::Int => DataType::Int64,
        Type::Uint => DataType::UInt64,
        Type::Double => DataType::Float64,
        Type::String => DataType::Utf8,
        Type::Bytes => DataType::Binary,
        Type::Timestamp => DataType::Timestamp(TimeUnit::Nanosecond, Some(UTC.into())),
        Type::Duration => DataType::Duration(TimeUnit::Nanosecond),
        Type::List(t) => match **t {
            Type::List(_) | Type::Map(_, _) => return None,
            _ => DataType::List(Arc::new(Field::new_list_field(arrow_of(t)?, true))),
        },
        Type::Null | Type::Map(_, _) | Type::Dyn => return None,
    })
}

/// A closed sub-expression run by the interpreter over the columns of
/// `args` (catalogue index and KFL type of each, ascending by index).
#[derive(Debug)]
pub(super) struct KflUdf {
    name: String,
    /// The filter's source: with the span in `name`, what identifies the
    /// sub-expression (the tree itself holds regexes, which do not hash).
    source: String,
    expr: trawl_kfl::Expr,
    args: Vec<(usize, Type)>,
    ret: DataType,
    signature: Signature,
    ctx: EvalContext,
}

impl KflUdf {
    /// `expr` must have no free variables and an [`arrow_of`] type.
    pub(super) fn new(
        source: &str,
        expr: &trawl_kfl::Expr,
        args: Vec<(usize, Type)>,
        ret: DataType,
        ctx: EvalContext,
    ) -> KflUdf {
        let text = source.get(expr.span.start..expr.span.end).unwrap_or("");
        KflUdf {
            // Unique per sub-expression: DataFusion names expressions by
            // their function name and arguments.
            name: format!("kfl@{}..{}({text})", expr.span.start, expr.span.end),
            source: source.to_string(),
            expr: expr.clone(),
            signature: Signature::any(args.len(), Volatility::Immutable),
            args,
            ret,
            ctx,
        }
    }
}

impl PartialEq for KflUdf {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name && self.source == o.source && self.ctx == o.ctx
    }
}

impl Eq for KflUdf {}

impl Hash for KflUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.source.hash(state);
        self.ctx.now.hash(state);
    }
}

impl ScalarUDFImpl for KflUdf {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(self.ret.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let arrays = args
            .args
            .into_iter()
            .map(|a| a.into_array(n))
            .collect::<DfResult<Vec<_>>>()?;
        let mut out = Vec::with_capacity(n);
        for row in 0..n {
            let rec = ArgRow {
                args: &self.args,
                arrays: &arrays,
                row,
            };
            out.push(trawl_kfl::eval_expr(&self.expr, &rec, &self.ctx).ok());
        }
        Ok(ColumnarValue::Array(to_array(&self.expr.ty, &out)?))
    }
}

/// One row of the UDF's argument columns, read as a KFL record.
struct ArgRow<'a> {
    args: &'a [(usize, Type)],
    arrays: &'a [ArrayRef],
    row: usize,
}

impl Record for ArgRow<'_> {
    fn field(&self, idx: usize) -> Value {
        let Ok(pos) = self.args.binary_search_by_key(&idx, |(i, _)| *i) else {
            return Value::Null;
        };
        match (self.args.get(pos), self.arrays.get(pos)) {
            (Some((_, ty)), Some(a)) => value_at(a.as_ref(), self.row, ty),
            _ => Value::Null,
        }
    }
}

/// The KFL value of row `row` of `a`, a column of KFL type `ty`; NULL (or
/// a column of an unexpected type) reads as the type's zero value, as an
/// absent field does.
pub(super) fn value_at(a: &dyn Array, row: usize, ty: &Type) -> Value {
    if row >= a.len() || a.is_null(row) {
        return Value::zero(ty);
    }
    let v = match ty {
        Type::Bool => a.as_boolean_opt().map(|b| Value::Bool(b.value(row))),
        Type::Int => a
            .as_primitive_opt::<Int64Type>()
            .map(|x| Value::Int(x.value(row))),
        Type::Uint => a
            .as_primitive_opt::<UInt64Type>()
            .map(|x| Value::Uint(x.value(row))),
        Type::Double => a
            .as_primitive_opt::<Float64Type>()
            .map(|x| Value::Double(x.value(row))),
        Type::String => a
            .as_string_opt::<i32>()
            .map(|s| Value::string(s.value(row)))
            .or_else(|| a.as_string_view_opt().map(|s| Value::string(s.value(row)))),
        Type::Bytes => a
            .as_binary_opt::<i32>()
            .map(|b| Value::Bytes(b.value(row).into())),
        Type::Timestamp => a
            .as_primitive_opt::<TimestampNanosecondType>()
            .map(|x| Value::Timestamp(x.value(row))),
        Type::Duration => a
            .as_primitive_opt::<DurationNanosecondType>()
            .map(|x| Value::Duration(x.value(row))),
        Type::List(t) => a.as_list_opt::<i32>().map(|l| {
            let items = l.value(row);
            Value::List((0..items.len()).map(|j| value_at(&items, j, t)).collect())
        }),
        Type::Map(kt, vt) => a.as_map_opt().map(|m| {
            let offsets = m.value_offsets();
            let (s, e) = match (offsets.get(row), offsets.get(row + 1)) {
                (Some(&s), Some(&e)) => (
                    usize::try_from(s).unwrap_or(0),
                    usize::try_from(e).unwrap_or(0),
                ),
                _ => (0, 0),
            };
            Value::Map(
                (s..e)
                    .map(|j| (value_at(m.keys(), j, kt), value_at(m.values(), j, vt)))
                    .collect(),
            )
        }),
        Type::Null | Type::Dyn => None,
    };
    v.unwrap_or_else(|| Value::zero(ty))
}

/// The Arrow array of KFL values of type `ty`; `None`, and values of
/// another type, become NULL.
pub(super) fn to_array(ty: &Type, vals: &[Option<Value>]) -> DfResult<ArrayRef> {
    macro_rules! prim {
        ($arr:ty, $pat:path) => {
            Arc::new(
                vals.iter()
                    .map(|v| match v {
                        Some($pat(x)) => Some(x.clone()),
                        _ => None,
                    })
                    .collect::<$arr>(),
            ) as ArrayRef
        };
    }
    Ok(match ty {
        Type::Bool => prim!(BooleanArray, Value::Bool),
        Type::Int => prim!(Int64Array, Value::Int),
        Type::Uint => prim!(UInt64Array, Value::Uint),
        Type::Double => prim!(Float64Array, Value::Double),
        Type::Duration => prim!(DurationNanosecondArray, Value::Duration),
        Type::Timestamp => Arc::new(
            vals.iter()
                .map(|v| match v {
                    Some(Value::Timestamp(t)) => Some(*t),
                    _ => None,
                })
                .collect::<TimestampNanosecondArray>()
                .with_timezone(UTC),
        ),
        Type::String => Arc::new(
            vals.iter()
                .map(|v| match v {
                    Some(Value::String(s)) => Some(&**s),
                    _ => None,
                })
                .collect::<StringArray>(),
        ),
        Type::Bytes => Arc::new(
            vals.iter()
                .map(|v| match v {
                    Some(Value::Bytes(b)) => Some(&**b),
                    _ => None,
                })
                .collect::<BinaryArray>(),
        ),
        Type::List(t) => {
            let Some(item) = arrow_of(t) else {
                return Err(unrepresentable(ty));
            };
            let mut flat = Vec::new();
            let mut lens = Vec::with_capacity(vals.len());
            let mut valid = Vec::with_capacity(vals.len());
            for v in vals {
                match v {
                    Some(Value::List(items)) => {
                        lens.push(items.len());
                        flat.extend(items.iter().cloned().map(Some));
                        valid.push(true);
                    }
                    _ => {
                        lens.push(0);
                        valid.push(false);
                    }
                }
            }
            let values = to_array(t, &flat)?;
            Arc::new(ListArray::try_new(
                Arc::new(Field::new_list_field(item, true)),
                OffsetBuffer::from_lengths(lens),
                values,
                Some(valid.into()),
            )?)
        }
        Type::Null | Type::Map(_, _) | Type::Dyn => return Err(unrepresentable(ty)),
    })
}

fn unrepresentable(ty: &Type) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::Internal(format!("no Arrow type for KFL {ty}"))
}

/// The scalar of a constant (no field read) sub-expression's value.
pub(super) fn scalar_of(ty: &Type, v: Option<Value>) -> DfResult<ScalarValue> {
    ScalarValue::try_from_array(&to_array(ty, &[v])?, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_arrow() {
        let ty = Type::List(Box::new(Type::String));
        let vals = vec![
            Some(Value::List(vec![Value::string("a"), Value::string("b")])),
            None,
            Some(Value::List(vec![])),
        ];
        let a = to_array(&ty, &vals).unwrap();
        assert_eq!(a.len(), 3);
        assert!(a.is_null(1));
        let back = value_at(a.as_ref(), 0, &ty);
        assert!(back.cel_eq(vals[0].as_ref().unwrap()));
        // NULL reads as the zero value, like an absent field.
        assert!(value_at(a.as_ref(), 1, &ty).cel_eq(&Value::List(vec![])));
        let ts = to_array(
            &Type::Timestamp,
            &[Some(Value::Timestamp(7)), Some(Value::Int(1))],
        )
        .unwrap();
        assert_eq!(ts.data_type(), &arrow_of(&Type::Timestamp).unwrap());
        assert!(ts.is_null(1), "a value of another type is NULL");
        assert!(arrow_of(&Type::Map(Box::new(Type::String), Box::new(Type::String))).is_none());
    }
}
