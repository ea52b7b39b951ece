// Command zipapp zips a staged Functions app folder for deployment, keeping Unix file modes.
//
//	go run ./internal/tools/zipapp -dir .build/app -exec handler -o .build/usage-export.zip
package main

import (
	"archive/zip"

	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Modes written into the zip (Core Tools uses the same split: executable and everything else).
const (
	execMode = 0o755
	fileMode = 0o644
)

// neverPackaged lists files that must not reach a deployment.
var neverPackaged = []string{"local.settings.json"}

// zipEpoch is the modification time of every entry (the earliest a zip can hold).
var zipEpoch = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

func main() {
	dir := flag.String("dir", "", "staged app folder (host.json at its root)")
	out := flag.String("o", "", "zip file to write")
	execs := flag.String("exec", "handler", "comma-separated paths (relative to -dir) that are executable")
	flag.Parse()
	if *dir == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: zipapp -dir DIR -o FILE.zip [-exec handler]")
		os.Exit(2)
	}
	if err := run(*dir, *out, strings.Split(*execs, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "zipapp:", err)
		os.Exit(1)
	}
}

func run(dir, out string, execs []string) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(out), ".zipapp-*")
	if err != nil {
		return fmt.Errorf("creating %s: %w", out, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := write(tmp, dir, execs); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return nil
}

// write zips the regular files under dir into w, with paths relative to dir. Files named in
// execs get mode 0755 and must exist; every other file gets 0644. A symlink, a device or a
// local.settings.json is refused.
func write(w io.Writer, dir string, execs []string) error {
	isExec := map[string]bool{}
	for _, e := range execs {
		if e = strings.TrimSpace(e); e != "" {
			isExec[filepath.ToSlash(filepath.Clean(e))] = true
		}
	}
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", rel)
		}
		for _, n := range neverPackaged {
			if filepath.Base(rel) == n {
				return fmt.Errorf("%s must not be packaged (it holds local secrets)", rel)
			}
		}
		names = append(names, rel)
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading %s: %w", dir, err)
	}
	sort.Strings(names)
	found := map[string]bool{}
	for _, n := range names {
		found[n] = true
	}
	for e := range isExec {
		if !found[e] {
			return fmt.Errorf("executable %s is not in %s", e, dir)
		}
	}
	if !found["host.json"] {
		return fmt.Errorf("%s has no host.json at its root: not a staged app", dir)
	}
	zw := zip.NewWriter(w)
	for _, n := range names {
		h := &zip.FileHeader{Name: n, Method: zip.Deflate, Modified: zipEpoch}
		mode := fs.FileMode(fileMode)
		if isExec[n] {
			mode = execMode
		}
		h.SetMode(mode) // also marks the entry as made on Unix, so unzip and the host keep the mode
		fw, err := zw.CreateHeader(h)
		if err != nil {
			return fmt.Errorf("adding %s: %w", n, err)
		}
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(n)))
		if err != nil {
			return err
		}
		_, err = io.Copy(fw, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("adding %s: %w", n, err)
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("finishing the zip: %w", err)
	}
	return nil
}
