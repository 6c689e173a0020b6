"""The filter stage between reading threads and writing rows: decontamination against evaluation sets,
near-duplicate removal, token budgets. Each filter is a small module; each drops and counts why."""
