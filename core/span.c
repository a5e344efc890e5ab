#include "core/span.h"

bool stls_span_eq_nocase(struct stls_span a, struct stls_span b)
{
	if (a.len != b.len)
		return false;
	for (size_t i = 0; i < a.len; i++)
		if (stls_ascii_lower(a.ptr[i]) != stls_ascii_lower(b.ptr[i]))
			return false;
	return true;
}

bool stls_span_starts_nocase(struct stls_span s, struct stls_span prefix)
{
	return s.len >= prefix.len && stls_span_eq_nocase(stls_span_head(s, prefix.len), prefix);
}

struct stls_span stls_span_trim(struct stls_span s)
{
	while (s.len > 0 && (s.ptr[0] == ' ' || s.ptr[0] == '\t')) {
		s.ptr++;
		s.len--;
	}
	while (s.len > 0 && (s.ptr[s.len - 1] == ' ' || s.ptr[s.len - 1] == '\t'))
		s.len--;
	return s;
}

struct stls_span stls_span_next_word(struct stls_span s, struct stls_span *out_word)
{
	size_t i = 0;
	while (i < s.len && s.ptr[i] != ' ')
		i++;
	*out_word = stls_span_head(s, i);
	while (i < s.len && s.ptr[i] == ' ')
		i++;
	return stls_span_from(s, i);
}

bool stls_span_to_u64(struct stls_span s, uint64_t max, uint64_t *out_value)
{
	uint64_t v = 0;
	if (s.len == 0 || s.len > 20)
		return false;
	for (size_t i = 0; i < s.len; i++) {
		uint8_t c = s.ptr[i];
		if (c < '0' || c > '9' || v > max / 10)
			return false;
		v *= 10;
		if ((uint64_t)(c - '0') > max - v)
			return false;
		v += (uint64_t)(c - '0');
	}
	*out_value = v;
	return true;
}

char *stls_span_printable(char *out, size_t out_len, struct stls_span s)
{
	size_t n = s.len < out_len - 1 ? s.len : out_len - 1;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s.ptr[i];
		out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	out[n] = '\0';
	return out;
}
