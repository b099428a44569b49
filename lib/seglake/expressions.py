"""Safe Spark SQL row expressions written in configuration (segment rules, source mappings).

An expression is parsed with sqlglot (Spark dialect) and accepted only when every node is in a
fixed set of operators and pure functions over known columns: subqueries, table or file access,
UDFs, ``reflect``/``java_method`` and clock functions are refused with a message naming where
the expression is configured and the offending part, before Spark starts.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import sqlglot
from sqlglot import exp

# columns, literals, logic, comparisons, arithmetic and a few pure functions
ROW: dict[type[exp.Expression], str] = {
    exp.Column: "column", exp.Identifier: "name", exp.Literal: "literal",
    exp.Boolean: "true/false", exp.Null: "NULL", exp.Paren: "( )", exp.Tuple: "( , )",
    exp.And: "AND", exp.Or: "OR", exp.Not: "NOT", exp.EQ: "=", exp.NEQ: "<>", exp.GT: ">",
    exp.GTE: ">=", exp.LT: "<", exp.LTE: "<=", exp.NullSafeEQ: "<=>", exp.Is: "IS",
    exp.In: "IN (list)", exp.Between: "BETWEEN", exp.Like: "LIKE", exp.ILike: "ILIKE",
    exp.Add: "+", exp.Sub: "-", exp.Mul: "*", exp.Div: "/", exp.Mod: "%", exp.Neg: "unary -",
    exp.Case: "CASE", exp.If: "WHEN/IF", exp.Cast: "CAST", exp.TryCast: "CAST",
    exp.DataType: "type", exp.Coalesce: "coalesce", exp.Abs: "abs", exp.Greatest: "greatest",
    exp.Least: "least", exp.Round: "round", exp.Floor: "floor", exp.Ceil: "ceil",
    exp.Lower: "lower", exp.Upper: "upper", exp.Length: "length",
    exp.ArrayContains: "array_contains",
}
# source mappings also reshape text and reach into nested fields
MAPPING: dict[type[exp.Expression], str] = {
    **ROW, exp.Concat: "concat", exp.ConcatWs: "concat_ws", exp.Substring: "substr",
    exp.Trim: "trim", exp.StrPosition: "instr", exp.RegexpReplace: "regexp_replace",
    exp.RegexpExtract: "regexp_extract", exp.Initcap: "initcap", exp.Nullif: "nullif",
    exp.Dot: "struct field", exp.Bracket: "element [ ]", exp.Split: "split",
    exp.Array: "array", exp.Struct: "struct", exp.PropertyEQ: "name := value",
    exp.Alias: "AS",
}


class ExpressionError(ValueError):
    """An expression that is not a safe row expression over the known columns."""


def functions(allowed: dict[type[exp.Expression], str]) -> list[str]:
    """The function names ``allowed`` permits, for messages and docs."""
    return sorted({v for k, v in allowed.items() if issubclass(k, exp.Func)
                   and v.isidentifier() and v.islower()})


def _describe(node: exp.Expression) -> str:
    if isinstance(node, exp.Anonymous):
        return f"function {node.name}()"
    if isinstance(node, (exp.Select, exp.Subquery, exp.Exists)):
        return f"subquery ({node.sql(dialect='spark')[:60]})"
    if isinstance(node, exp.Table):
        return f"table {node.sql(dialect='spark')}"
    if isinstance(node, exp.Func):
        return f"function {node.sql_name().lower()}()"
    return f"{type(node).__name__} ({node.sql(dialect='spark')[:60]})"


def expression_columns(text: str, known: Iterable[str], where: str, kind: str, hint: str,
                       allowed: dict[type[exp.Expression], str] = ROW) -> list[str]:
    """The columns ``text`` reads; raises ExpressionError naming ``where`` and the offending
    part when it is not a pure row expression over ``known`` columns."""
    known = set(known)
    try:
        tree = sqlglot.parse_one(text, read="spark")
    except sqlglot.errors.SqlglotError as exc:
        raise ExpressionError(f"{where}: not a valid expression: {exc}") from None
    used = []
    for node in tree.walk():
        if type(node) not in allowed:
            raise ExpressionError(f"{where}: {_describe(node)} is not allowed; {kind} with "
                                  f"operators and {', '.join(functions(allowed))}")
        if isinstance(node, exp.Column):
            if node.table and allowed is ROW:
                raise ExpressionError(f"{where}: {node.sql(dialect='spark')} names a table; "
                                      f"{kind} only")
            name = node.parts[0].name if node.table else node.name
            if name not in known and not isinstance(node.parent, exp.Dot):
                close = difflib.get_close_matches(name, sorted(known), n=3)
                hint_ = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ExpressionError(f"{where}: unknown column {name!r}{hint_}; {hint}")
            used.append(name)
        if isinstance(node, exp.In) and node.args.get("query") is not None:
            raise ExpressionError(f"{where}: IN (subquery) is not allowed")
    return sorted(set(used))
