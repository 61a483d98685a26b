package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// envFlags registers flags whose default can come from a HERALD_* variable,
// so that --help shows, for each flag, its variable and its default.
type envFlags struct {
	fs      *flag.FlagSet
	envs    map[string]string // flag name → env var
	fromEnv map[string]bool   // flags whose value came from their variable
	errs    []error
}

type flagT = flag.Flag

func newEnvFlags(name string, out io.Writer) *envFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	return &envFlags{fs: fs, envs: make(map[string]string), fromEnv: make(map[string]bool)}
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

func (f *envFlags) String(name, def, usage string) *string {
	if v, ok := f.lookup(name); ok {
		def = v
	}
	return f.fs.String(name, def, usage)
}

func (f *envFlags) Bool(name string, def bool, usage string) *bool {
	if v, ok := f.lookup(name); ok {
		switch strings.ToLower(v) {
		case "1", "true", "yes", "on":
			def = true
		case "0", "false", "no", "off", "":
			def = false
		default:
			f.errs = append(f.errs, fmt.Errorf("%s: %q is not a boolean", envName(name), v))
		}
	}
	return f.fs.Bool(name, def, usage)
}

func (f *envFlags) Int(name string, def int, usage string) *int {
	if v, ok := f.lookup(name); ok {
		var n int
		if _, err := fmt.Sscan(v, &n); err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s: %q is not an integer", envName(name), v))
		} else {
			def = n
		}
	}
	return f.fs.Int(name, def, usage)
}

func (f *envFlags) Float(name string, def float64, usage string) *float64 {
	if v, ok := f.lookup(name); ok {
		var n float64
		if _, err := fmt.Sscan(v, &n); err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s: %q is not a number", envName(name), v))
		} else {
			def = n
		}
	}
	return f.fs.Float64(name, def, usage)
}

func (f *envFlags) Duration(name string, def time.Duration, usage string) *time.Duration {
	if v, ok := f.lookup(name); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s: %q is not a duration (e.g. 30s): %v", envName(name), v, err))
		} else {
			def = d
		}
	}
	return f.fs.Duration(name, def, usage)
}

// parse parses args; it returns flag.ErrHelp for --help.
func (f *envFlags) parse(args []string) error {
	f.fs.Usage = f.usage
	if err := f.fs.Parse(args); err != nil {
		return err
	}
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

func (f *envFlags) usage() {
	w := f.fs.Output()
	fmt.Fprintf(w, "Usage: herald %s [flags]\n\nEvery flag can also be set with the environment variable shown; a flag wins over its variable.\n", f.fs.Name())
	if f.fs.Lookup("config") != nil {
		fmt.Fprint(w, "With --config FILE (YAML, keys are the flag names), the precedence is: flag > environment > file > default.\n")
	}
	fmt.Fprintln(w)
	f.fs.VisitAll(func(fl *flag.Flag) {
		def := fl.DefValue
		if def == "" {
			def = `""`
		}
		if env := f.envs[fl.Name]; env != "" && env != "-" {
			fmt.Fprintf(w, "  --%s (%s)\n      %s (default %s)\n", fl.Name, env, fl.Usage, def)
			return
		}
		fmt.Fprintf(w, "  --%s\n      %s (default %s)\n", fl.Name, fl.Usage, def)
	})
}
