// The NBD protocol server lives here (issue 4).
