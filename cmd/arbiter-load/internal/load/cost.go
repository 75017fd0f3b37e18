package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// CmdStat is one command's line of INFO commandstats.
type CmdStat struct {
	Calls int64
	Usec  int64 // total microseconds Redis spent in the command
}

// CommandTimes returns every command's calls and time from INFO
// commandstats. An EVALSHA's time is its whole script, the commands it
// calls included (Redis 7 also counts those apart, under their own names).
func CommandTimes(ctx context.Context, rdb redis.UniversalClient) (map[string]CmdStat, error) {
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	return parseCommandStats(info), nil
}

func parseCommandStats(info string) map[string]CmdStat {
	out := map[string]CmdStat{}
	for _, line := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_")
		if !ok {
			continue
		}
		name, fields, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		var s CmdStat
		for _, kv := range strings.Split(fields, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				s.Calls, _ = strconv.ParseInt(v, 10, 64)
			}
			if v, ok := strings.CutPrefix(kv, "usec="); ok {
				s.Usec, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		out[name] = s
	}
	return out
}

// IsScriptCall says whether a commandstats name is a script invocation.
func IsScriptCall(name string) bool {
	switch name {
	case "evalsha", "evalsha_ro", "eval", "eval_ro", "fcall", "fcall_ro":
		return true
	}
	return false
}

// isClientCommand says whether a command is one a client sends besides
// script calls (connection set-up, health checks, the measurement's own).
func isClientCommand(name string) bool {
	return name == "ping" || name == "hello" || name == "select" || name == "auth" || name == "info" ||
		name == "monitor" || strings.HasPrefix(name, "client") || strings.HasPrefix(name, "script") ||
		strings.HasPrefix(name, "config")
}

// ScriptCost is what Redis spent on script calls between two CommandTimes
// snapshots: the calls, their time, and the commands the scripts called.
type ScriptCost struct {
	Calls       int64   `json:"calls"`
	Usec        int64   `json:"usec"`
	UsecPerCall float64 `json:"usec_per_call"`
	// InScriptPerCall is the commands the scripts called, per script call.
	InScriptPerCall float64 `json:"in_script_commands_per_call"`
}

// ScriptDelta returns the script cost between two snapshots.
func ScriptDelta(before, after map[string]CmdStat) ScriptCost {
	var c ScriptCost
	var inScript int64
	for name, a := range after {
		b := before[name]
		switch {
		case IsScriptCall(name):
			c.Calls += a.Calls - b.Calls
			c.Usec += a.Usec - b.Usec
		case !isClientCommand(name):
			inScript += a.Calls - b.Calls
		}
	}
	if c.Calls > 0 {
		c.UsecPerCall = float64(c.Usec) / float64(c.Calls)
		c.InScriptPerCall = float64(inScript) / float64(c.Calls)
	}
	return c
}

// ClockTicks is the unit of utime and stime in /proc/<pid>/stat: USER_HZ,
// which Linux fixes at 100 for user space whatever the kernel's HZ.
const ClockTicks = 100

// ProcCPU returns the CPU time process pid has used so far, user plus
// system, summed over its threads (/proc/<pid>/stat utime + stime).
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseProcStat(string(b))
}

// MachineBusy returns how long the machine's CPUs have been busy so far,
// summed over them, and how many there are: the first line of /proc/stat,
// user + nice + system + irq + softirq (not idle, iowait, nor steal, the
// time a hypervisor gave the core to another guest).
func MachineBusy() (busy time.Duration, cpus int, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseMachineStat(string(b))
}

func parseMachineStat(s string) (time.Duration, int, error) {
	var busy int64
	cpus := 0
	for i, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if i == 0 {
			// cpu user nice system idle iowait irq softirq steal ...
			if len(f) < 8 || f[0] != "cpu" {
				return 0, 0, errors.New("/proc/stat: no cpu line first")
			}
			for _, k := range []int{1, 2, 3, 6, 7} {
				v, err := strconv.ParseInt(f[k], 10, 64)
				if err != nil {
					return 0, 0, fmt.Errorf("/proc/stat: %w", err)
				}
				busy += v
			}
			continue
		}
		if len(f) > 0 && strings.HasPrefix(f[0], "cpu") {
			cpus++
		}
	}
	if cpus == 0 {
		return 0, 0, errors.New("/proc/stat: no cpuN line")
	}
	return time.Duration(busy) * time.Second / ClockTicks, cpus, nil
}

func parseProcStat(s string) (time.Duration, error) {
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields from the last ')'. After it, field 3 (state) comes first,
	// so utime (field 14) and stime (field 15) are the 12th and 13th.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("/proc stat: no command name")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields after the name, want at least 13", len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc stat: %w", err)
	}
	return time.Duration(ut+st) * time.Second / ClockTicks, nil
}

// MonitorLine is one command MONITOR showed: who ran it ("lua" for a
// script's own calls, else the client's address) and its arguments.
type MonitorLine struct {
	Source string
	Args   []string
}

// Monitor is an open MONITOR connection; Stop ends it and returns what it saw.
type Monitor struct {
	conn  net.Conn
	lines chan []MonitorLine
}

// StartMonitor opens a connection of its own to the Redis of url and runs
// MONITOR on it. It reads the commands Redis runs, scripts' calls
// included, so the bench discovers what a request does (which script SHA,
// which keys, which commands) instead of assuming it.
func StartMonitor(ctx context.Context, url string) (*Monitor, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, err
	}
	rd := bufio.NewReader(conn)
	send := func(args ...string) error {
		var b strings.Builder
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
		if _, err := conn.Write([]byte(b.String())); err != nil {
			return err
		}
		line, err := rd.ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, "+") {
			return fmt.Errorf("%s: %s", args[0], strings.TrimSpace(line))
		}
		return nil
	}
	if opts.Password != "" {
		args := []string{"AUTH", opts.Password}
		if opts.Username != "" {
			args = []string{"AUTH", opts.Username, opts.Password}
		}
		if err := send(args...); err != nil {
			conn.Close()
			return nil, errors.New("monitor: AUTH refused")
		}
	}
	if err := send("MONITOR"); err != nil {
		conn.Close()
		return nil, fmt.Errorf("monitor: %w", err)
	}
	m := &Monitor{conn: conn, lines: make(chan []MonitorLine, 1)}
	go func() {
		var seen []MonitorLine
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				break
			}
			if l, ok := ParseMonitorLine(strings.TrimRight(line, "\r\n")); ok {
				seen = append(seen, l)
			}
		}
		m.lines <- seen
	}()
	return m, nil
}

// Stop waits settle for the last lines to arrive, closes the connection
// and returns every command seen.
func (m *Monitor) Stop(settle time.Duration) []MonitorLine {
	time.Sleep(settle)
	m.conn.Close()
	return <-m.lines
}

// ParseMonitorLine parses `+1700000000.123456 [0 127.0.0.1:5000] "evalsha" "ab" "1" "k"`.
func ParseMonitorLine(s string) (MonitorLine, bool) {
	open := strings.IndexByte(s, '[')
	end := strings.IndexByte(s, ']')
	if !strings.HasPrefix(s, "+") || open < 0 || end < open {
		return MonitorLine{}, false
	}
	src := strings.Fields(s[open+1 : end])
	if len(src) != 2 {
		return MonitorLine{}, false
	}
	var l MonitorLine
	l.Source = src[1]
	rest := s[end+1:]
	for {
		i := strings.IndexByte(rest, '"')
		if i < 0 {
			break
		}
		// Redis quotes each argument and escapes '"' and '\' inside it.
		j := i + 1
		var b strings.Builder
		for j < len(rest) && rest[j] != '"' {
			if rest[j] == '\\' && j+1 < len(rest) {
				j++
				switch rest[j] {
				case 'n':
					b.WriteByte('\n')
				case 'r':
					b.WriteByte('\r')
				case 't':
					b.WriteByte('\t')
				case 'x':
					if j+2 < len(rest) {
						if v, err := strconv.ParseUint(rest[j+1:j+3], 16, 8); err == nil {
							b.WriteByte(byte(v))
							j += 2
							break
						}
					}
					b.WriteByte('x')
				default:
					b.WriteByte(rest[j])
				}
				j++
				continue
			}
			b.WriteByte(rest[j])
			j++
		}
		l.Args = append(l.Args, b.String())
		if j >= len(rest) {
			break
		}
		rest = rest[j+1:]
	}
	return l, len(l.Args) > 0
}
