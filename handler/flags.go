package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/usage-export/usage-export/internal/config"
)

// settingFlags are the setting flags of one command, registered from config.Settings.
type settingFlags struct {
	fs   *flag.FlagSet
	vals map[string]*string // by environment name
}

// addSettingFlags registers on fs a flag for each setting whose Use overlaps use.
func addSettingFlags(fs *flag.FlagSet, use config.Use) *settingFlags {
	sf := &settingFlags{fs: fs, vals: map[string]*string{}}
	for _, s := range config.Settings {
		if s.Flag == "" || s.Use&use == 0 {
			continue
		}
		// The default is for the help only: load takes the flags that were given, and Load the
		// same default when neither flag nor environment sets the setting.
		sf.vals[s.Env] = fs.String(s.Flag, s.Default, s.Help+" (env "+s.Env+")")
	}
	return sf
}

// load returns the validated settings: flags given on the command line win over the environment,
// and an unknown USAGE_EXPORT_* variable is an error like any bad setting.
func (sf *settingFlags) load(needScopes, needOutput bool) (*config.Config, error) {
	given := map[string]string{}
	byFlag := map[string]string{}
	for _, s := range config.Settings {
		byFlag[s.Flag] = s.Env
	}
	sf.fs.Visit(func(f *flag.Flag) {
		if env, ok := byFlag[f.Name]; ok && sf.vals[env] != nil {
			given[env] = *sf.vals[env]
		}
	})
	return loadConfig(config.Lookup(given, os.LookupEnv), os.Environ(), needScopes, needOutput)
}

// loadConfig loads the settings and adds the unknown names of environ to the problems, in the
// one *config.Error.
func loadConfig(lookup func(string) (string, bool), environ []string, needScopes, needOutput bool) (*config.Config, error) {
	cfg, err := config.Load(lookup, needScopes, needOutput)
	unknown := config.UnknownNames(environ)
	if len(unknown) == 0 {
		return cfg, err
	}
	var problems []error
	if all := (*config.Error)(nil); errors.As(err, &all) {
		problems = all.Unwrap()
	} else if err != nil {
		problems = []error{err}
	}
	return nil, &config.Error{Joined: errors.Join(append(problems, unknown...)...)}
}

// parseFlags parses args. -h/--help prints the command's help on stdout and ends the command with
// exit code 0; a bad flag prints the error and the help on stderr (exit code 2).
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		_, _ = stdout.Write(buf.Bytes())
		return exitError{code: exitOK}
	case err != nil:
		_, _ = stderr.Write(buf.Bytes())
		return exitError{code: exitUsage}
	}
	fs.SetOutput(stderr)
	return nil
}

// usageFunc sets a command's help: one line of synopsis and what it does, then its flags.
func usageFunc(fs *flag.FlagSet, synopsis string) {
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: handler %s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help" || arg == "help"
}
