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
// Besides totp_code and totp_ok it defines the locals totp_ipad_hi,
// totp_ipad_lo, totp_opad_hi, totp_opad_lo, totp_unhex, totp_pads and
// totp_hotp; scripts that include it must not define locals with those names.
// Errors (a secret that is not hex of 1 to 256 bytes, a counter that is not
// an integer in [0, 2^53], a non-positive period, a skew that is not a whole
// number in 0..100) abort the script with an error reply: they are bugs or
// corrupt data, never a user's wrong code, which totp_ok just refuses.
//
// Cost: totp_ok prepares the key once, then computes one HOTP (two SHA-1
// calls) per window, the current window first, then -1, +1, -2, ...,
// stopping at the first match: a wrong code with skew 1 costs three
// (BenchmarkLuaTOTP measures them).
const luaTOTP = `-- totp_code(secret_hex, counter) -> 6-digit string, RFC 4226 HOTP with HMAC-SHA1 built from redis.sha1hex
-- totp_ok(secret_hex, code, unix_seconds, period, skew) -> true when code matches any counter floor(t/period)+d for d in -skew..skew

-- K xor ipad (0x36) and K xor opad (0x5c), one nibble at a time: XOR has no
-- operator here, and these lookups cost a third of an arithmetic bit loop.
-- The high-nibble tables are pre-multiplied by 16.
local totp_ipad_hi = {[0]=48, 32, 16, 0, 112, 96, 80, 64, 176, 160, 144, 128, 240, 224, 208, 192}
local totp_ipad_lo = {[0]=6, 7, 4, 5, 2, 3, 0, 1, 14, 15, 12, 13, 10, 11, 8, 9}
local totp_opad_hi = {[0]=80, 64, 112, 96, 16, 0, 48, 32, 208, 192, 240, 224, 144, 128, 176, 160}
local totp_opad_lo = {[0]=12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3}

-- totp_unhex turns validated hex of even length into the bytes it encodes.
-- It reads 8 hex digits per tonumber (a 32-bit value, exact in a double),
-- twice as fast as a gsub callback per byte; the SHA-1 digests it mostly
-- converts are 40 digits.
local function totp_unhex(h)
  local t, n, i = {}, #h, 1
  while i + 7 <= n do
    local v = tonumber(string.sub(h, i, i + 7), 16)
    local b4 = v % 256
    v = (v - b4) / 256
    local b3 = v % 256
    v = (v - b3) / 256
    local b2 = v % 256
    local k = #t
    t[k + 1], t[k + 2], t[k + 3], t[k + 4] = (v - b2) / 256, b2, b3, b4
    i = i + 8
  end
  while i < n do
    t[#t + 1] = tonumber(string.sub(h, i, i + 1), 16)
    i = i + 2
  end
  return string.char(unpack(t))
end

-- totp_pads returns K xor ipad and K xor opad, K being the key zero-padded to
-- the 64-byte SHA-1 block (hashed first when longer, per RFC 2104).
local function totp_pads(secret_hex)
  if type(secret_hex) ~= 'string' or #secret_hex == 0 or #secret_hex > 512
      or #secret_hex % 2 ~= 0 or string.find(secret_hex, '[^0-9a-fA-F]') then
    error('totp: secret must be hex of 1 to 256 bytes')
  end
  if #secret_hex > 128 then secret_hex = redis.sha1hex(totp_unhex(secret_hex)) end
  local key = totp_unhex(secret_hex)
  local ipad, opad = {}, {}
  for i = 1, #key do
    local b = string.byte(key, i)
    local lo = b % 16
    local hi = (b - lo) / 16
    ipad[i] = totp_ipad_hi[hi] + totp_ipad_lo[lo]
    opad[i] = totp_opad_hi[hi] + totp_opad_lo[lo]
  end
  -- Zero padding bytes XOR a constant are the constant itself.
  local n = 64 - #key
  return string.char(unpack(ipad)) .. string.rep(string.char(54), n),
         string.char(unpack(opad)) .. string.rep(string.char(92), n)
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
  -- The skew bound keeps a bad argument (say inf) from looping forever
  -- inside Redis, which would block every other client.
  if type(now_s) ~= 'number' or type(period) ~= 'number' or not (period > 0)
      or type(skew) ~= 'number' or not (skew >= 0 and skew <= 100) or skew ~= math.floor(skew) then
    error('totp: need a numeric time, a positive period and a whole skew in 0..100')
  end
  local ipad, opad = totp_pads(secret_hex)
  local base = math.floor(now_s / period)
  -- Nearest windows first: a right code usually costs one HOTP.
  for i = 0, 2 * skew do
    local d = (i % 2 == 0) and (i / 2) or (-(i + 1) / 2)
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
