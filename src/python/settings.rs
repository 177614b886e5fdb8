//! `_vaurien.settings()`: the rows of [`crate::settings::FLAGS`], for the Python API
//! (`start_proxy`'s defaults and flags, `vaurien.config.DEFAULT_SETTINGS`).

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::settings::{Literal, FLAGS};

fn set_literal(d: &Bound<'_, PyDict>, key: &str, value: Option<Literal>) -> PyResult<()> {
    match value {
        None => d.set_item(key, d.py().None()),
        Some(Literal::Bool(b)) => d.set_item(key, b),
        Some(Literal::Int(i)) => d.set_item(key, i),
        Some(Literal::Float(f)) => d.set_item(key, f),
        Some(Literal::Text(s)) => d.set_item(key, s),
    }
}

/// One dict a flag of the `vaurien` command, in the order of `--help`: `name` (the ini key and
/// keyword), `flag`, `switch`, `value_name`, `default` (as Python reads it written: `30` an
/// int; None when there is none), `help`, `ini` (a `[vaurien]` key, not a flag of the command
/// line only), `original` (the key of the original's `DEFAULT_SETTINGS`, or None) and
/// `original_default` (its default there).
#[pyfunction]
pub fn settings(py: Python<'_>) -> PyResult<Vec<Bound<'_, PyDict>>> {
    FLAGS
        .iter()
        .map(|f| {
            let s = f.spec();
            let d = PyDict::new(py);
            d.set_item("name", s.name)?;
            d.set_item("flag", s.flag())?;
            d.set_item("switch", s.value_name.is_none())?;
            d.set_item("value_name", s.value_name)?;
            set_literal(&d, "default", s.python_default())?;
            d.set_item("help", s.help)?;
            d.set_item("ini", s.is_setting())?;
            d.set_item("original", s.original)?;
            set_literal(
                &d,
                "original_default",
                s.original.and(s.python_original_default()),
            )?;
            Ok(d)
        })
        .collect()
}
