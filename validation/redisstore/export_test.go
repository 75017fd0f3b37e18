package redisstore

// Test hooks of the outbox's slot layout (outbox.go).
var (
	KeySlot = keySlot
	SlotKey = slotKey
)
