package main

import (
	"context"
	"io"
)

func cmdVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return exitError{code: exitUsage, msg: "verify: not built yet"}
}

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return exitError{code: exitUsage, msg: "demo: not built yet"}
}
