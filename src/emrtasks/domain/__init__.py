"""Pure domain: tasks, rules, validation, outcomes, ids and errors. Imports nothing of ours."""
