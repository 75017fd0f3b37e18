package redisstore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-bank/arbiter/validation/redisstore/redistest"
)

// everyField returns a value of *p's struct with every field set, each to
// a value of its own, and the same value as a Lua table constructor (Lua
// names from the lua tags; numbers as Lua numbers, so Lua prints them).
func everyField(p any) string {
	v := reflect.ValueOf(p).Elem()
	var lua []string
	for i := range v.NumField() {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("lua"), ",")
		f := v.Field(i)
		var val string
		switch f.Kind() {
		case reflect.String:
			f.SetString(fmt.Sprintf("%s-%d", name, i))
			val = "'" + f.String() + "'"
		case reflect.Int64:
			f.SetInt(1764410400000 + int64(i))
			val = fmt.Sprint(f.Int())
		case reflect.Bool:
			f.SetBool(true)
			val = "'1'"
		case reflect.Slice:
			f.Set(reflect.MakeSlice(f.Type(), 2, 2))
			f.Index(0).SetString(name + "-a")
			f.Index(1).SetString(name + "-b")
			val = "{'" + name + "-a', '" + name + "-b'}"
		default:
			panic("everyField: " + f.Kind().String())
		}
		lua = append(lua, name+" = "+val)
	}
	return "{" + strings.Join(lua, ", ") + "}"
}

type probeReply struct {
	Check  string `lua:"check"`  // check_encode(c)
	Again  string `lua:"again"`  // check_encode(check_fields(check))
	Shadow string `lua:"shadow"` // check_encode of meta's shadow of c
	Event  string `lua:"event"`  // the event appended to the audit
}

// TestCodecBothWays: a check with every field of storedCheck set, and an
// event with every field of storedEvent, are encoded by the scripts' Lua
// (check_encode; the audit's events_append; meta's shadow, held_fields
// then shadow_read) and decoded by Go, and every field must come back. A
// field the Go declaration has and the Lua half drops, or one the Lua half
// writes in another place, fails here.
func TestCodecBothWays(t *testing.T) {
	var check storedCheck
	var event storedEvent
	body := "local c = " + everyField(&check) + "\n" +
		"local enc = check_encode(c)\n" +
		"redis.call('HSET', K_META, held_fields(c))\n" +
		"events_append(" + everyField(&event) + ")\n" +
		"return reply{check = enc, again = check_encode(check_fields(enc)), shadow = check_encode(shadow_read()),\n" +
		"  event = redis.call('LINDEX', K_AUDIT, 0)}\n"
	probe := script("codec_probe", noArgs{}, probeReply{}, body)
	for name, start := range shadowBackends {
		t.Run(name, func(t *testing.T) {
			s := New(start(t), Options{})
			var r probeReply
			if err := s.run(context.Background(), probe, "P-1", time.Now(), nil, noArgs{}, &r); err != nil {
				t.Fatal(err)
			}
			if got := mustParse(t, r.Check); got != check {
				t.Errorf("check through Lua\n %+v\nwant\n %+v", got, check)
			}
			if r.Again != r.Check {
				t.Errorf("check_fields then check_encode = %q, want %q", r.Again, r.Check)
			}
			// The shadow keeps the fields tagged held, and its status says held.
			var held storedCheck
			hv, cv := reflect.ValueOf(&held).Elem(), reflect.ValueOf(check)
			for _, f := range checkCodec.fields {
				if f.held {
					hv.Field(f.index).Set(cv.Field(f.index))
				}
			}
			held.Status = "held"
			if got := mustParse(t, r.Shadow); got != held {
				t.Errorf("meta's shadow through Lua\n %+v\nwant the held fields\n %+v", got, held)
			}
			var got storedEvent
			if err := eventCodec.decode(&got, r.Event); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, event) {
				t.Errorf("event through Lua\n %+v\nwant\n %+v", got, event)
			}
		})
	}
}

// TestCodecFieldsAreAddedAtTheEnd: a value with every field of storedCheck
// decodes whole; one written before the added fields existed reads them
// as empty; one a newer release wrote, with fields after the last one
// known, reads the known ones; one with fewer fields than the first
// release wrote, another tag or JSON (what arbiter migrate rewrites) is
// errRetired. The same values go through the Lua decoder (check_fields).
func TestCodecFieldsAreAddedAtTheEnd(t *testing.T) {
	var full storedCheck
	everyField(&full)
	fields := []string{"c2"}
	v := reflect.ValueOf(full)
	for _, f := range checkCodec.fields {
		switch x := v.Field(f.index).Interface().(type) {
		case bool:
			fields = append(fields, map[bool]string{true: "1"}[x])
		default:
			fields = append(fields, fmt.Sprint(x))
		}
	}
	if checkCodec.required == len(checkCodec.fields) {
		t.Fatal("storedCheck has no added field to test with")
	}
	before := full
	for _, f := range checkCodec.fields[checkCodec.required:] {
		reflect.ValueOf(&before).Elem().Field(f.index).SetZero()
	}
	ctx := context.Background()
	rdb := redistest.MustStartRedis(t).Client(t)
	inLua := redis.NewScript(luaCodec() + "return check_encode(check_fields(ARGV[1]))")
	for _, c := range []struct {
		name, raw string
		want      storedCheck
	}{
		{"every field", strings.Join(fields, sep), full},
		{"written before the added fields", strings.Join(fields[:1+checkCodec.required], sep), before},
		{"written by a newer release", strings.Join(append(slices.Clone(fields), "newer", "fields"), sep), full},
	} {
		if got := mustParse(t, c.raw); got != c.want {
			t.Errorf("%s: decode = %+v, want %+v", c.name, got, c.want)
		}
		lua, err := inLua.Run(ctx, rdb, nil, c.raw).Text()
		if err != nil {
			t.Fatalf("%s: check_fields: %v", c.name, err)
		}
		if got := mustParse(t, lua); got != c.want {
			t.Errorf("%s: through check_fields and check_encode = %+v, want %+v", c.name, got, c.want)
		}
	}
	for _, bad := range []string{
		strings.Join(fields[:checkCodec.required], sep),
		strings.Join(append([]string{"e2"}, fields[1:]...), sep),
		`{"id":"chk_1","product":"credit_card","status":"held"}`,
	} {
		if c, err := parseCheck(bad); !errors.Is(err, errRetired) {
			t.Errorf("parseCheck(%q) = %+v, %v; want errRetired", bad, c, err)
		}
		if out, err := inLua.Run(ctx, rdb, nil, bad).Result(); err == nil || !strings.Contains(err.Error(), retiredMsg) {
			t.Errorf("check_fields(%q) = %v, %v; want RETIRED raised", bad, out, err)
		}
	}
}
