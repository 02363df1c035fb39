"""The monthly report: `build` computes its figures from the accounting database (pure,
unrounded, exact totals); `numbers` rounds them for display; `table`, `csvfile` and
`render` give its formats; `plot` draws it."""
