/* The outbound session table (proto/outbound.c): the legacy MTA's side of the outbound relay. */
#include <criterion/criterion.h>

#include "proto/outbound.h"

static bool allowed(enum stls_relay_state state, enum stls_smtp_verb verb, enum stls_relay_state *out_next)
{
	enum stls_relay_state next;
	bool ok = stls_out_table_lookup(state, verb, &next);
	if (ok && out_next)
		*out_next = next;
	return ok;
}

Test(outbound_table, only_the_first_rcpt_opens_a_destination)
{
	/* MAIL is local (the destination is not known before a recipient); the first RCPT picks it. */
	enum stls_relay_state next;
	cr_assert(allowed(STLS_RELAY_READY, STLS_SMTP_VERB_MAIL, &next));
	cr_assert_eq(next, STLS_RELAY_MAILED);
	cr_assert(allowed(STLS_RELAY_MAILED, STLS_SMTP_VERB_RCPT, &next));
	cr_assert_eq(next, STLS_RELAY_CONNECTING);
	for (unsigned s = 0; s < STLS_RELAY__COUNT; s++)
		for (unsigned v = 0; v < STLS_SMTP_VERB__COUNT; v++) {
			if (s == STLS_RELAY_MAILED && v == STLS_SMTP_VERB_RCPT)
				continue;
			if (allowed((enum stls_relay_state)s, (enum stls_smtp_verb)v, &next))
				cr_assert_neq(next, STLS_RELAY_CONNECTING, "%s in %s would open a destination",
					      stls_smtp_verb_str((enum stls_smtp_verb)v),
					      stls_relay_state_str((enum stls_relay_state)s));
		}
}

Test(outbound_table, no_transaction_command_before_ehlo)
{
	static const enum stls_smtp_verb verbs[] = { STLS_SMTP_VERB_MAIL, STLS_SMTP_VERB_RCPT, STLS_SMTP_VERB_DATA,
						     STLS_SMTP_VERB_BDAT };
	for (unsigned v = 0; v < sizeof(verbs) / sizeof(verbs[0]); v++) {
		enum stls_relay_state next;
		cr_assert(allowed(STLS_RELAY_GREET, verbs[v], &next), "%s unanswered in GREET",
			  stls_smtp_verb_str(verbs[v]));
		cr_assert_eq(next, STLS_RELAY_GREET, "%s leaves GREET", stls_smtp_verb_str(verbs[v]));
	}
}

Test(outbound_table, data_needs_a_recipient_and_bdat_is_not_offered)
{
	enum stls_relay_state next;
	/* DATA before any recipient was accepted is answered locally and keeps the transaction. */
	cr_assert(allowed(STLS_RELAY_MAILED, STLS_SMTP_VERB_DATA, &next));
	cr_assert_eq(next, STLS_RELAY_MAILED);
	/* CHUNKING is not offered to the legacy MTA: BDAT never reaches the byte state. */
	for (unsigned s = 0; s < STLS_RELAY__COUNT; s++)
		if (allowed((enum stls_relay_state)s, STLS_SMTP_VERB_BDAT, &next))
			cr_assert_neq(next, STLS_RELAY_BDAT, "BDAT in %s",
				      stls_relay_state_str((enum stls_relay_state)s));
}

Test(outbound_table, no_command_is_read_while_connecting_or_in_message_bytes)
{
	static const enum stls_relay_state byte_states[] = { STLS_RELAY_CONNECTING, STLS_RELAY_DATA, STLS_RELAY_BDAT,
							     STLS_RELAY_QUIT, STLS_RELAY_HANDSHAKE };
	for (unsigned s = 0; s < sizeof(byte_states) / sizeof(byte_states[0]); s++)
		for (unsigned v = 0; v < STLS_SMTP_VERB__COUNT; v++)
			cr_assert(!allowed(byte_states[s], (enum stls_smtp_verb)v, NULL), "%s has a handler in %s",
				  stls_smtp_verb_str((enum stls_smtp_verb)v), stls_relay_state_str(byte_states[s]));
}

Test(outbound_table, every_command_state_answers_quit_noop_rset_and_unknown)
{
	static const enum stls_relay_state cmd_states[] = { STLS_RELAY_GREET, STLS_RELAY_READY, STLS_RELAY_MAILED,
							    STLS_RELAY_RELAY };
	static const enum stls_smtp_verb verbs[] = { STLS_SMTP_VERB_QUIT, STLS_SMTP_VERB_NOOP, STLS_SMTP_VERB_RSET,
						     STLS_SMTP_VERB_UNKNOWN, STLS_SMTP_VERB_STARTTLS };
	for (unsigned s = 0; s < sizeof(cmd_states) / sizeof(cmd_states[0]); s++)
		for (unsigned v = 0; v < sizeof(verbs) / sizeof(verbs[0]); v++)
			cr_assert(allowed(cmd_states[s], verbs[v], NULL), "%s unhandled in %s",
				  stls_smtp_verb_str(verbs[v]), stls_relay_state_str(cmd_states[s]));
	/* STARTTLS is never offered on the outbound listener: it never leads to a handshake. */
	for (unsigned s = 0; s < STLS_RELAY__COUNT; s++) {
		enum stls_relay_state next;
		if (allowed((enum stls_relay_state)s, STLS_SMTP_VERB_STARTTLS, &next))
			cr_assert_neq(next, STLS_RELAY_HANDSHAKE);
	}
}
