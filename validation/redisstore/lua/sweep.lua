-- sweep: settle the customer's hold if it expired (the prelude's settle,
-- as any read would), and take the customer off the slot's expiry index
-- unless a hold is live. The sweeper (Store.Sweep) runs it for the
-- customers the index says are due, so an expiry nobody reads is recorded,
-- and reaches the outbox, within seconds. Reply: checkOpReply.
local h = live_hold()
if not h then expiring_drop() end
return reply{kind = KIND.ok, detail = EXPIRED == 1 and 'expired' or ''}
