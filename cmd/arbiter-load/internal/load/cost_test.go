package load

import (
	"slices"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	// A command name with a space and a ')' in it, utime 250, stime 50.
	line := "4242 (arb iter) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 50 0 0 20 0 9 0 100 0 0\n"
	got, err := parseProcStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3 * time.Second; got != want {
		t.Fatalf("cpu = %v, want %v", got, want)
	}
	if _, err := parseProcStat("4242 (short) S 1 2"); err == nil {
		t.Fatal("a short line parsed, want an error")
	}
}

func TestScriptDelta(t *testing.T) {
	before := parseCommandStats("# Commandstats\r\ncmdstat_evalsha:calls=10,usec=500,usec_per_call=50.00,rejected_calls=0,failed_calls=0\r\ncmdstat_hset:calls=30,usec=30\r\ncmdstat_ping:calls=1,usec=1\r\n")
	after := parseCommandStats("# Commandstats\r\ncmdstat_evalsha:calls=110,usec=4500,usec_per_call=40.91\r\ncmdstat_hset:calls=330,usec=330\r\ncmdstat_incr:calls=100,usec=100\r\ncmdstat_ping:calls=9,usec=9\r\ncmdstat_info:calls=5,usec=5\r\n")
	got := ScriptDelta(before, after)
	want := ScriptCost{Calls: 100, Usec: 4000, UsecPerCall: 40, InScriptPerCall: 4}
	if got != want {
		t.Fatalf("ScriptDelta = %+v, want %+v", got, want)
	}
}

func TestParseMonitorLine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want MonitorLine
		ok   bool
	}{
		{`+1700000000.123456 [0 127.0.0.1:50000] "evalsha" "abc123" "2" "arb:{C-1}:meta" "x"`,
			MonitorLine{Source: "127.0.0.1:50000", Args: []string{"evalsha", "abc123", "2", "arb:{C-1}:meta", "x"}}, true},
		{`+1700000000.123457 [0 lua] "hset" "k" "v" "{\"a\":\"b c\"}" "\x00\\"`,
			MonitorLine{Source: "lua", Args: []string{"hset", "k", "v", `{"a":"b c"}`, "\x00\\"}}, true},
		{`+OK`, MonitorLine{}, false},
	} {
		got, ok := ParseMonitorLine(tc.in)
		if ok != tc.ok || got.Source != tc.want.Source || !slices.Equal(got.Args, tc.want.Args) {
			t.Errorf("ParseMonitorLine(%q) = %+v %v, want %+v %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseMachineStat(t *testing.T) {
	// user 100, nice 10, system 50, idle 900, iowait 5, irq 3, softirq 7, steal 40 (ticks).
	const stat = "cpu  100 10 50 900 5 3 7 40 0 0\ncpu0 50 5 25 450 2 1 3 20 0 0\ncpu1 50 5 25 450 3 2 4 20 0 0\nintr 1 2 3\n"
	busy, cpus, err := parseMachineStat(stat)
	if err != nil || busy != 1700*time.Millisecond || cpus != 2 {
		t.Fatalf("parseMachineStat = %v, %d, %v; want 1.7s busy (no idle, iowait or steal) on 2 CPUs", busy, cpus, err)
	}
	if _, _, err := parseMachineStat("intr 1 2\n"); err == nil {
		t.Fatal("a stat without its cpu line parsed")
	}
}
