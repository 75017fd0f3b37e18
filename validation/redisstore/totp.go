package redisstore

import "github.com/redis/go-redis/v9"

// luaTOTP defines Lua functions that verify an RFC 6238 TOTP (HMAC-SHA1,
// 6 digits) inside a script, so that redeeming an OTP, checking it and
// recording its use take one round trip and cannot interleave with another
// redemption. It is meant to be prepended to the scripts that need it.
//
// Redis has no HMAC, so HMAC-SHA1 is built from redis.sha1hex as in RFC 2104.
// The same source must run on Redis 7 (Lua 5.1 with the bit library) and on
// miniredis (gopher-lua, no bit library), so it uses arithmetic only: no bit
// operations, no integer division, and every number stays an exact double
// below 2^53.
//
// Besides totp_code and totp_ok it defines the helpers totp_bxor,
// totp_unhex, totp_pads and totp_hotp; scripts that include it must not
// define locals with those names. Errors (a secret that is not hex, a counter
// that is not an integer in [0, 2^53], a non-positive period, a negative or
// fractional skew) abort the script with an error reply: they are bugs or
// corrupt data, never a user's wrong code.
//
// Cost: one call of totp_ok makes 2*(2*skew+1) SHA-1 calls over at most
// 84 bytes each, plus one key preparation shared by all counters.
const luaTOTP = `-- totp_code(secret_hex, counter) -> 6-digit string, RFC 4226 HOTP with HMAC-SHA1 built from redis.sha1hex
-- totp_ok(secret_hex, code, unix_seconds, period, skew) -> true when code matches any counter floor(t/period)+d for d in -skew..skew

-- totp_bxor returns a XOR b for integers a, b in 0..255 (no bit library in gopher-lua).
local function totp_bxor(a, b)
  local r, p = 0, 1
  while a > 0 or b > 0 do
    local x, y = a % 2, b % 2
    if x ~= y then r = r + p end
    a, b, p = (a - x) / 2, (b - y) / 2, p * 2
  end
  return r
end

-- totp_unhex turns hex (even length, already validated) into the bytes it encodes.
local function totp_unhex(h)
  return (string.gsub(h, '..', function(c) return string.char(tonumber(c, 16)) end))
end

-- totp_pads returns K xor ipad and K xor opad, K being the key zero-padded to
-- the 64-byte SHA-1 block (hashed first when longer, per RFC 2104).
local function totp_pads(secret_hex)
  if type(secret_hex) ~= 'string' or #secret_hex == 0 or #secret_hex % 2 ~= 0
      or string.find(secret_hex, '[^0-9a-fA-F]') then
    error('totp: secret must be non-empty hex of whole bytes')
  end
  local key = totp_unhex(secret_hex)
  if #key > 64 then key = totp_unhex(redis.sha1hex(key)) end
  local ipad, opad = {}, {}
  for i = 1, #key do
    local b = string.byte(key, i)
    ipad[i] = string.char(totp_bxor(b, 54))
    opad[i] = string.char(totp_bxor(b, 92))
  end
  -- Zero padding bytes XOR a constant are the constant itself.
  local n = 64 - #key
  return table.concat(ipad) .. string.rep(string.char(54), n),
         table.concat(opad) .. string.rep(string.char(92), n)
end

-- totp_hotp returns the 6-digit HOTP for counter, an integer in [0, 2^53].
local function totp_hotp(ipad, opad, counter)
  local c, b = counter, {}
  for i = 8, 1, -1 do
    b[i] = c % 256
    c = (c - b[i]) / 256
  end
  local msg = string.char(b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8])
  local mac = redis.sha1hex(opad .. totp_unhex(redis.sha1hex(ipad .. msg)))
  -- Dynamic truncation: the offset is the low nibble of the last byte, i.e.
  -- the last hex digit; the 4 bytes from there are 8 hex digits, a 32-bit
  -- number a double holds exactly. Dropping the top bit is % 2^31.
  local off = tonumber(string.sub(mac, 40, 40), 16)
  local p = tonumber(string.sub(mac, 2 * off + 1, 2 * off + 8), 16)
  return string.format('%06d', p % 2147483648 % 1000000)
end

local function totp_code(secret_hex, counter)
  if type(counter) ~= 'number' or counter < 0 or counter > 9007199254740992
      or counter ~= math.floor(counter) then
    error('totp: counter must be an integer in [0, 2^53]')
  end
  local ipad, opad = totp_pads(secret_hex)
  return totp_hotp(ipad, opad, counter)
end

local function totp_ok(secret_hex, code, now_s, period, skew)
  -- Only exactly 6 ASCII digits can match; anything else is refused before hashing.
  if type(code) ~= 'string' or not string.find(code, '^[0-9][0-9][0-9][0-9][0-9][0-9]$') then
    return false
  end
  if type(now_s) ~= 'number' or type(period) ~= 'number' or not (period > 0)
      or type(skew) ~= 'number' or not (skew >= 0) or skew ~= math.floor(skew) then
    error('totp: need a numeric time, a positive period and a whole non-negative skew')
  end
  local ipad, opad = totp_pads(secret_hex)
  local base = math.floor(now_s / period)
  for d = -skew, skew do
    local c = base + d
    -- Out-of-range counters (time before 1970, NaN, infinity) never match.
    if c >= 0 and c <= 9007199254740992 and totp_hotp(ipad, opad, c) == code then
      return true
    end
  end
  return false
end
`

// totpCheckScript is TEST SUPPORT ONLY: no production code calls it. It
// exposes luaTOTP so tests can compare it with Go's TOTP implementation.
// ARGV: secret hex, counter, code, unix seconds, period, skew. It returns
// {totp_code(secret, counter), 1 if totp_ok(secret, code, now, period, skew)
// else 0}.
var totpCheckScript = redis.NewScript(luaTOTP + "\nreturn {totp_code(ARGV[1], tonumber(ARGV[2])), totp_ok(ARGV[1], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])) and 1 or 0}")
