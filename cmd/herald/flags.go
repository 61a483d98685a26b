package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// envFlags registers flags whose default can come from a HERALD_* variable,
// so that --help shows, for each flag, its variable and its default, and
// every mistake is reported by the name the user typed: the flag, the
// variable or the config file's key.
type envFlags struct {
	fs       *flag.FlagSet
	helpOut  io.Writer         // where --help goes (stdout: it was asked for)
	envs     map[string]string // flag name → env var ("-": none)
	fromEnv  map[string]bool   // flags whose value came from their variable
	fromFile map[string]bool   // flags whose value came from the config file
	onCLI    map[string]bool   // flags set on the command line
	file     string            // the config file read, if any
	// shared names the flags of another command whose keys the config
	// file may hold (token reads serve's file): they are skipped, not
	// reported as unknown.
	shared *flag.FlagSet
	errs   []error
	// header and footer frame the flag list of --help; header defaults to
	// "Usage: herald NAME [flags]".
	header, footer string
}

// newEnvFlags returns the flags of `herald name`; --help is written to
// helpOut. Errors are not printed: parse returns them, explained.
func newEnvFlags(name string, helpOut io.Writer) *envFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &envFlags{fs: fs, helpOut: helpOut, envs: make(map[string]string),
		fromEnv: make(map[string]bool), fromFile: make(map[string]bool), onCLI: make(map[string]bool)}
}

func envName(flagName string) string {
	return "HERALD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (f *envFlags) lookup(name string) (string, bool) {
	env := envName(name)
	f.envs[name] = env
	v, ok := os.LookupEnv(env)
	if ok {
		f.fromEnv[name] = true
	}
	return v, ok
}

// envValue applies a variable's value to a just-registered flag, through
// the flag's own parser, so a variable accepts exactly what the flag does.
func (f *envFlags) envValue(name, v string) {
	fl := f.fs.Lookup(name)
	// Value.Set, not FlagSet.Set: the flag was not given on the command line.
	if err := fl.Value.Set(v); err != nil {
		f.errs = append(f.errs, badValue(envName(name), v, fl, err))
		return
	}
	fl.DefValue = fl.Value.String() // --help shows what the variable set
}

func (f *envFlags) String(name, def, usage string) *string {
	p := f.fs.String(name, def, usage)
	if v, ok := f.lookup(name); ok {
		*p = v
		f.fs.Lookup(name).DefValue = v
	}
	return p
}

func (f *envFlags) Bool(name string, def bool, usage string) *bool {
	p := new(bool)
	*p = def
	f.fs.Var((*boolValue)(p), name, usage)
	if v, ok := f.lookup(name); ok {
		f.envValue(name, v)
	}
	return p
}

func (f *envFlags) Int(name string, def int, usage string) *int {
	p := f.fs.Int(name, def, usage)
	if v, ok := f.lookup(name); ok {
		f.envValue(name, v)
	}
	return p
}

func (f *envFlags) Float(name string, def float64, usage string) *float64 {
	p := f.fs.Float64(name, def, usage)
	if v, ok := f.lookup(name); ok {
		f.envValue(name, v)
	}
	return p
}

func (f *envFlags) Duration(name string, def time.Duration, usage string) *time.Duration {
	p := f.fs.Duration(name, def, usage)
	if v, ok := f.lookup(name); ok {
		f.envValue(name, v)
	}
	return p
}

// boolValue is a boolean flag that accepts what a person writes in a
// variable or a YAML file as well as Go's words: true/false, yes/no,
// on/off, 1/0 (any case).
type boolValue bool

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "t", "true", "yes", "y", "on":
		return true, true
	case "0", "f", "false", "no", "n", "off", "":
		return false, true
	}
	return false, false
}

func (b *boolValue) Set(s string) error {
	v, ok := parseBool(s)
	if !ok {
		return errors.New("not a boolean")
	}
	*b = boolValue(v)
	return nil
}

func (b *boolValue) String() string   { return strconv.FormatBool(bool(*b)) }
func (b *boolValue) Get() any         { return bool(*b) }
func (b *boolValue) IsBoolFlag() bool { return true }

// parse parses args; it returns flag.ErrHelp after writing the help for
// --help. Every other error is one short explanation naming what the user
// typed, with a hint of what is expected (see usageFailed).
func (f *envFlags) parse(args []string) error {
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			f.writeUsage(f.helpOut)
			return err
		}
		return explainFlagError(f.fs, err)
	}
	f.fs.Visit(func(fl *flag.Flag) { f.onCLI[fl.Name] = true })
	if len(f.errs) > 0 {
		return f.errs[0]
	}
	if f.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", f.fs.Arg(0))
	}
	if cf := f.fs.Lookup("config"); cf != nil && cf.Value.String() != "" {
		return f.loadConfigFile(cf.Value.String())
	}
	return nil
}

// origin names where the value of flag name came from, as the user wrote
// it: "--drain-timeout", "HERALD_DRAIN_TIMEOUT" or "herald.yaml:
// drain-timeout". A value left at its default is named by its flag.
func (f *envFlags) origin(name string) string {
	switch {
	case f.fromFile[name]:
		return f.file + ": " + name
	case f.onCLI[name]:
		return "--" + name
	case f.fromEnv[name]:
		return envName(name)
	}
	return "--" + name
}

// usageFailed prints err, where to read more, and returns exit code 2: a
// mistake in what was typed gets two lines, not the whole --help.
func usageFailed(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "herald %s: %v\n", cmd, err)
	fmt.Fprintf(stderr, "Run 'herald %s --help' for every flag, its variable and its default.\n", cmd)
	return 2
}

// writeUsage is the one --help of every subcommand: for each flag, its
// variable (if any), what it does and its default (unless zero: as Go's
// flag package, an empty string, 0 or false is not shown).
func (f *envFlags) writeUsage(w io.Writer) {
	header := f.header
	if header == "" {
		header = fmt.Sprintf("Usage: herald %s [flags]\n", f.fs.Name())
	}
	fmt.Fprint(w, header)
	if len(f.envs) > 0 {
		fmt.Fprint(w, "\nA flag can also be set with the environment variable shown; a flag wins over its variable.\n")
	}
	if f.fs.Lookup("config") != nil {
		fmt.Fprint(w, "With --config FILE (YAML, keys are the flag names), the precedence is: flag > environment > file > default.\n")
	}
	fmt.Fprintln(w)
	f.fs.VisitAll(func(fl *flag.Flag) {
		fmt.Fprintf(w, "  --%s", fl.Name)
		if env := f.envs[fl.Name]; env != "" && env != "-" {
			fmt.Fprintf(w, " (%s)", env)
		}
		fmt.Fprintf(w, "\n      %s", fl.Usage)
		if def := fl.DefValue; !isZeroDefault(def) && !strings.Contains(fl.Usage, "(default") {
			fmt.Fprintf(w, " (default %s)", def)
		}
		fmt.Fprintln(w)
	})
	fmt.Fprint(w, f.footer)
}

func isZeroDefault(def string) bool {
	switch def {
	case "", "0", "false", "0s":
		return true
	}
	return false
}
