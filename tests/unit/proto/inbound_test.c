/* The inbound session table (proto/inbound.c): which command is acted on in which state. */
#include <criterion/criterion.h>

#include "proto/inbound.h"

static bool allowed(enum stls_relay_state state, enum stls_smtp_verb verb, enum stls_relay_state *out_next)
{
	enum stls_relay_state next;
	bool ok = stls_in_table_lookup(state, verb, &next);
	if (ok && out_next)
		*out_next = next;
	return ok;
}

Test(inbound, mail_before_ehlo_is_a_sequence_error_not_a_backend_connection)
{
	enum stls_relay_state next = STLS_RELAY__COUNT;
	/* GREET answers MAIL itself (503 "send EHLO first"), and never moves on. */
	cr_assert(allowed(STLS_RELAY_GREET, STLS_SMTP_VERB_MAIL, &next));
	cr_assert_eq(next, STLS_RELAY_GREET);
	cr_assert(allowed(STLS_RELAY_GREET, STLS_SMTP_VERB_EHLO, &next));
	cr_assert_eq(next, STLS_RELAY_READY);
	cr_assert(allowed(STLS_RELAY_GREET, STLS_SMTP_VERB_HELO, &next));
	cr_assert_eq(next, STLS_RELAY_READY);
}

Test(inbound, only_mail_opens_the_backend)
{
	for (unsigned v = 0; v < STLS_SMTP_VERB__COUNT; v++) {
		enum stls_relay_state next;
		if (!allowed(STLS_RELAY_READY, (enum stls_smtp_verb)v, &next))
			continue;
		if (v == STLS_SMTP_VERB_MAIL)
			cr_assert_eq(next, STLS_RELAY_CONNECTING);
		else
			cr_assert_neq(next, STLS_RELAY_CONNECTING, "%s would open the backend",
				      stls_smtp_verb_str((enum stls_smtp_verb)v));
	}
}

Test(inbound, no_command_is_read_while_connecting_or_in_message_bytes)
{
	static const enum stls_relay_state byte_states[] = { STLS_RELAY_CONNECTING, STLS_RELAY_DATA, STLS_RELAY_BDAT,
							     STLS_RELAY_QUIT };
	for (unsigned s = 0; s < sizeof(byte_states) / sizeof(byte_states[0]); s++)
		for (unsigned v = 0; v < STLS_SMTP_VERB__COUNT; v++)
			cr_assert(!allowed(byte_states[s], (enum stls_smtp_verb)v, NULL), "%s has a handler in %s",
				  stls_smtp_verb_str((enum stls_smtp_verb)v), stls_relay_state_str(byte_states[s]));
}

Test(inbound, every_command_state_handles_quit_noop_and_unknown)
{
	static const enum stls_relay_state cmd_states[] = { STLS_RELAY_GREET, STLS_RELAY_READY, STLS_RELAY_RELAY };
	static const enum stls_smtp_verb verbs[] = { STLS_SMTP_VERB_QUIT, STLS_SMTP_VERB_NOOP, STLS_SMTP_VERB_RSET,
						     STLS_SMTP_VERB_UNKNOWN, STLS_SMTP_VERB_STARTTLS };
	for (unsigned s = 0; s < 3; s++)
		for (unsigned v = 0; v < sizeof(verbs) / sizeof(verbs[0]); v++)
			cr_assert(allowed(cmd_states[s], verbs[v], NULL), "%s unhandled in %s",
				  stls_smtp_verb_str(verbs[v]), stls_relay_state_str(cmd_states[s]));
	enum stls_relay_state next;
	cr_assert(allowed(STLS_RELAY_RELAY, STLS_SMTP_VERB_QUIT, &next));
	cr_assert_eq(next, STLS_RELAY_QUIT);
}

Test(inbound, message_commands_move_to_byte_states_only_in_relay)
{
	enum stls_relay_state next;
	cr_assert(allowed(STLS_RELAY_RELAY, STLS_SMTP_VERB_BDAT, &next));
	cr_assert_eq(next, STLS_RELAY_BDAT);
	/* DATA stays in RELAY until the backend's 354 arrives. */
	cr_assert(allowed(STLS_RELAY_RELAY, STLS_SMTP_VERB_DATA, &next));
	cr_assert_eq(next, STLS_RELAY_RELAY);
	for (unsigned s = 0; s < STLS_RELAY__COUNT; s++) {
		if (s == STLS_RELAY_RELAY)
			continue;
		for (unsigned v = 0; v < STLS_SMTP_VERB__COUNT; v++)
			if (allowed((enum stls_relay_state)s, (enum stls_smtp_verb)v, &next))
				cr_assert(next != STLS_RELAY_DATA && next != STLS_RELAY_BDAT &&
						  next != STLS_RELAY_RELAY,
					  "%s in %s leads to %s", stls_smtp_verb_str((enum stls_smtp_verb)v),
					  stls_relay_state_str((enum stls_relay_state)s), stls_relay_state_str(next));
	}
}

Test(inbound, state_names_cover_every_state)
{
	for (unsigned s = 0; s < STLS_RELAY__COUNT; s++)
		cr_assert_str_neq(stls_relay_state_str((enum stls_relay_state)s), "UNKNOWN");
	cr_assert_str_eq(stls_relay_state_str(STLS_RELAY__COUNT), "UNKNOWN");
}
