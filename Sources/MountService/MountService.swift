// The mount table, control API and state live here (issue 4).
