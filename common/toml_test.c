/* SPDX-License-Identifier: MIT */
/* toml_test.c - cmocka tests for the TOML parser: table-driven valid and invalid documents. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "toml.h"

typedef struct ValidCase {
	const char *name;
	const char *toml;
	const char *json; /* expected tree; JSON integers vs reals matter */
} ValidCase;

typedef struct InvalidCase {
	const char *name;
	const char *toml;
	size_t len; /* 0: strlen(toml); set for inputs with embedded NUL bytes */
	int line;
	int column;
	const char *message; /* must occur in TomlError.message */
} InvalidCase;

#define CODEX_CONFIG                                                                                         \
	"# Codex CLI configuration\n"                                                                        \
	"model = \"gpt-5\"\n"                                                                                \
	"model_provider = \"mock\"\n"                                                                        \
	"approval_policy = \"on-request\"\n"                                                                 \
	"sandbox_mode = \"workspace-write\"\n"                                                               \
	"\n"                                                                                                 \
	"[model_providers.mock]\n"                                                                           \
	"name = \"Mock provider\"\n"                                                                         \
	"base_url = \"http://127.0.0.1:8080/v1\"\n"                                                          \
	"wire_api = \"responses\"\n"                                                                         \
	"request_max_retries = 4\n"                                                                          \
	"stream_idle_timeout_ms = 300_000\n"                                                                 \
	"\n"                                                                                                 \
	"[model_providers.mock.http_headers]\n"                                                              \
	"\"X-Agentd\" = \"1\"\n"                                                                             \
	"\n"                                                                                                 \
	"[permissions.dev]\n"                                                                                \
	"\":root\" = \"read\"\n"                                                                             \
	"\":workspace\" = \"write\"\n"                                                                       \
	"\"/tmp\" = 'write'\n"                                                                               \
	"\n"                                                                                                 \
	"[[hooks.SessionStart]]\n"                                                                           \
	"command = [\"/usr/bin/agentd-hook\", \"--event\", \"start\"]\n"                                     \
	"timeout = 5.0\n"                                                                                    \
	"\n"                                                                                                 \
	"[[hooks.SessionStart]]\n"                                                                           \
	"command = [\"logger\", \"-t\", \"codex\"]\n"                                                        \
	"matcher = { source = \"cli\", interactive = true }\n"                                               \
	"\n"                                                                                                 \
	"[sandbox_workspace_write]\n"                                                                        \
	"writable_roots = [\n"                                                                               \
	"    \"/home/dev/.cache\",  # build caches\n"                                                        \
	"    \"/var/tmp\",\n"                                                                                \
	"]\n"                                                                                                \
	"network_access = false\n"                                                                           \
	"\n"                                                                                                 \
	"[shell_environment_policy]\n"                                                                       \
	"inherit = \"core\"\n"                                                                               \
	"exclude = [\"AWS_*\", \"AZURE_*\"]\n"                                                               \
	"\n"                                                                                                 \
	"[profiles.fast]\n"                                                                                  \
	"model = \"gpt-5-mini\"\n"                                                                           \
	"model_reasoning_effort = \"low\"\n"

#define CODEX_JSON                                                                                           \
	"{\"model\": \"gpt-5\", \"model_provider\": \"mock\", \"approval_policy\": \"on-request\","          \
	" \"sandbox_mode\": \"workspace-write\","                                                            \
	" \"model_providers\": {\"mock\": {\"name\": \"Mock provider\","                                     \
	"   \"base_url\": \"http://127.0.0.1:8080/v1\", \"wire_api\": \"responses\","                        \
	"   \"request_max_retries\": 4, \"stream_idle_timeout_ms\": 300000,"                                 \
	"   \"http_headers\": {\"X-Agentd\": \"1\"}}},"                                                      \
	" \"permissions\": {\"dev\": {\":root\": \"read\", \":workspace\": \"write\", \"/tmp\": "            \
	"\"write\"}},"                                                                                       \
	" \"hooks\": {\"SessionStart\": ["                                                                   \
	"   {\"command\": [\"/usr/bin/agentd-hook\", \"--event\", \"start\"], \"timeout\": 5.0},"            \
	"   {\"command\": [\"logger\", \"-t\", \"codex\"],"                                                  \
	"    \"matcher\": {\"source\": \"cli\", \"interactive\": true}}]},"                                  \
	" \"sandbox_workspace_write\": {\"writable_roots\": [\"/home/dev/.cache\", \"/var/tmp\"],"           \
	"   \"network_access\": false},"                                                                     \
	" \"shell_environment_policy\": {\"inherit\": \"core\", \"exclude\": [\"AWS_*\", \"AZURE_*\"]},"     \
	" \"profiles\": {\"fast\": {\"model\": \"gpt-5-mini\", \"model_reasoning_effort\": \"low\"}}}"

static const ValidCase valid_cases[] = {
	{ "empty document", "", "{}" },
	{ "comments and blank lines", "# only a comment\n\n   \t\n# another # one\n", "{}" },
	{ "scalar types", "a = 1\nb = \"x\"\nc = true\nd = false\n",
	  "{\"a\": 1, \"b\": \"x\", \"c\": true, \"d\": false}" },
	{ "quoted keys", "\"a b\" = 1\n'c.d' = 2\n\"\" = 3\n\"\\u00e9\" = 4\n",
	  "{\"a b\": 1, \"c.d\": 2, \"\": 3, \"\\u00e9\": 4}" },
	{ "dotted keys", "a.b.c = 1\na.b.d = 2\na . e = 3\n\"x\".'y'.z = 4\n",
	  "{\"a\": {\"b\": {\"c\": 1, \"d\": 2}, \"e\": 3}, \"x\": {\"y\": {\"z\": 4}}}" },
	{ "keys that look like other values", "1234 = \"x\"\n3.14 = \"pi\"\ntrue = 1\ninf = 2\n-_- = 3\n",
	  "{\"1234\": \"x\", \"3\": {\"14\": \"pi\"}, \"true\": 1, \"inf\": 2, \"-_-\": 3}" },
	{ "basic string escapes", "s = \"t\\tq\\\"b\\\\n\\nf\\fr\\rb\\b \\u00e9 \\U0001F600 \\u0000\"\n",
	  "{\"s\": \"t\\tq\\\"b\\\\n\\nf\\fr\\rb\\b \\u00e9 \\ud83d\\ude00 \\u0000\"}" },
	{ "literal strings", "path = 'C:\\Users\\nodejs'\nre = '<\\i\\c*\\s*>'\nq = 'say \"hi\"'\n",
	  "{\"path\": \"C:\\\\Users\\\\nodejs\", \"re\": \"<\\\\i\\\\c*\\\\s*>\", \"q\": \"say "
	  "\\\"hi\\\"\"}" },
	{ "multi-line basic string", "s = \"\"\"\nRoses are red\n  Violets are blue\"\"\"\n",
	  "{\"s\": \"Roses are red\\n  Violets are blue\"}" },
	{ "line-ending backslash", "s = \"\"\"\nThe quick \\\n\n    brown \\   \n  fox.\\\n\"\"\"\n",
	  "{\"s\": \"The quick brown fox.\"}" },
	{ "multi-line quotes at the end", "a = \"\"\"x\"\"\"\"\nb = \"\"\"\"\"y\"\"\"\"\"\nc = '''''z'''''\n",
	  "{\"a\": \"x\\\"\", \"b\": \"\\\"\\\"y\\\"\\\"\", \"c\": \"''z''\"}" },
	{ "multi-line literal string", "s = '''\nI [dw]on't need \\d{2} apples\n  raw \\n'''\n",
	  "{\"s\": \"I [dw]on't need \\\\d{2} apples\\n  raw \\\\n\"}" },
	{ "integers",
	  "a = +99\nb = -17\nc = 0\nd = 1_000_000\ne = 0xDEAD_beef\nf = 0o755\ng = 0b1101\n"
	  "h = 9223372036854775807\ni = -9223372036854775808\nj = 0x7FFFFFFFFFFFFFFF\nk = -0\n",
	  "{\"a\": 99, \"b\": -17, \"c\": 0, \"d\": 1000000, \"e\": 3735928559, \"f\": 493, \"g\": 13,"
	  " \"h\": 9223372036854775807, \"i\": -9223372036854775808, \"j\": 9223372036854775807, \"k\": 0}" },
	{ "floats",
	  "a = 1.5\nb = -3.14\nc = 5e+22\nd = 1e06\ne = -2E-2\nf = 6.626e-34\ng = 224_617.445_991\n"
	  "h = -0.0\ni = 0e0\nj = 1e-400\n",
	  "{\"a\": 1.5, \"b\": -3.14, \"c\": 5e22, \"d\": 1e6, \"e\": -0.02, \"f\": 6.626e-34,"
	  " \"g\": 224617.445991, \"h\": -0.0, \"i\": 0.0, \"j\": 0.0}" },
	{ "special floats kept as text", "a = inf\nb = -inf\nc = +nan\nd = [nan, +inf]\n",
	  "{\"a\": \"inf\", \"b\": \"-inf\", \"c\": \"+nan\", \"d\": [\"nan\", \"+inf\"]}" },
	{ "mixed arrays", "a = [1, \"two\", 3.0, true, [4], {x = 5}, 1979-05-27]\n",
	  "{\"a\": [1, \"two\", 3.0, true, [4], {\"x\": 5}, \"1979-05-27\"]}" },
	{ "multi-line array with comments",
	  "a = [ # open\n  1, # one\n\n  2 # two\n  , # comma\n  3,\n] # done\n", "{\"a\": [1, 2, 3]}" },
	{ "nested and empty arrays", "a = []\nb = [[], [[]]]\nc = [ [ 1 , 2 ] , [ 'x' ] ]\n",
	  "{\"a\": [], \"b\": [[], [[]]], \"c\": [[1, 2], [\"x\"]]}" },
	{ "inline tables", "p = { x = 1, y.z = 2, \"q\" = { r = [] } }\ne = {}\nn = {a={b={}}}\n",
	  "{\"p\": {\"x\": 1, \"y\": {\"z\": 2}, \"q\": {\"r\": []}}, \"e\": {}, \"n\": {\"a\": {\"b\": "
	  "{}}}}" },
	{ "inline table with multi-line array", "t = { a = [\n1,\n2\n] }\n", "{\"t\": {\"a\": [1, 2]}}" },
	{ "tables", "top = 0\n[a]\nx = 1\n[b.c]\ny = 2\n[a.d]\nz = 3\n[ \"q k\" . 'l' ]\n",
	  "{\"top\": 0, \"a\": {\"x\": 1, \"d\": {\"z\": 3}}, \"b\": {\"c\": {\"y\": 2}}, \"q k\": {\"l\": "
	  "{}}}" },
	{ "super-table defined after sub-table", "[x.y.z]\nw = 1\n[x]\nv = 2\n",
	  "{\"x\": {\"y\": {\"z\": {\"w\": 1}}, \"v\": 2}}" },
	{ "array of tables", "[[p]]\nname = \"a\"\n[[p]]\n[[p]]\nname = \"c\"\n",
	  "{\"p\": [{\"name\": \"a\"}, {}, {\"name\": \"c\"}]}" },
	{ "nested arrays of tables",
	  "[[fruits]]\nname = \"apple\"\n[fruits.physical]\ncolor = \"red\"\n[[fruits.varieties]]\nname = "
	  "\"red "
	  "delicious\"\n"
	  "[[fruits.varieties]]\nname = \"granny smith\"\n[[fruits]]\nname = "
	  "\"banana\"\n[[fruits.varieties]]\nname = \"plantain\"\n",
	  "{\"fruits\": [{\"name\": \"apple\", \"physical\": {\"color\": \"red\"},"
	  " \"varieties\": [{\"name\": \"red delicious\"}, {\"name\": \"granny smith\"}]},"
	  " {\"name\": \"banana\", \"varieties\": [{\"name\": \"plantain\"}]}]}" },
	{ "sub-table under dotted keys",
	  "[fruit]\napple.color = \"red\"\n[fruit.apple.texture]\nsmooth = true\n",
	  "{\"fruit\": {\"apple\": {\"color\": \"red\", \"texture\": {\"smooth\": true}}}}" },
	{ "array of tables within dotted keys",
	  "[fruit]\napple.color = \"red\"\n[[fruit.apple.seeds]]\nsize = 2\n",
	  "{\"fruit\": {\"apple\": {\"color\": \"red\", \"seeds\": [{\"size\": 2}]}}}" },
	{ "implicit table then its parent", "[[a.b]]\nx = 1\n[a]\ny = 2\n",
	  "{\"a\": {\"b\": [{\"x\": 1}], \"y\": 2}}" },
	{ "dates and times",
	  "odt1 = 1979-05-27T07:32:00Z\nodt2 = 1979-05-27T00:32:00.999999-07:00\nodt3 = 1979-05-27 "
	  "07:32:00+05:30\n"
	  "ldt = 1979-05-27T07:32:00\nld = 2024-02-29\nlt = 00:32:00.5\nleap = 2016-12-31T23:59:60z\n",
	  "{\"odt1\": \"1979-05-27T07:32:00Z\", \"odt2\": \"1979-05-27T00:32:00.999999-07:00\","
	  " \"odt3\": \"1979-05-27 07:32:00+05:30\", \"ldt\": \"1979-05-27T07:32:00\", \"ld\": "
	  "\"2024-02-29\","
	  " \"lt\": \"00:32:00.5\", \"leap\": \"2016-12-31T23:59:60z\"}" },
	{ "date followed by comment", "d = 2000-02-29 # leap\n", "{\"d\": \"2000-02-29\"}" },
	{ "CRLF line endings", "a = 1\r\n# c\r\ns = \"\"\"\r\nx\r\ny\"\"\"\r\n[t]\r\nb = [\r\n2,\r\n]\r\n",
	  "{\"a\": 1, \"s\": \"x\\ny\", \"t\": {\"b\": [2]}}" },
	{ "byte order mark",
	  "\xEF\xBB\xBF"
	  "a = 1\n",
	  "{\"a\": 1}" },
	{ "unicode text",
	  "# caf\xC3\xA9\n\"\xD0\xBA\xD0\xBB\xD1\x8E\xD1\x87\" = \"\xE2\x9C\x93 \xF0\x9F\x98\x80\"\n",
	  "{\"\\u043a\\u043b\\u044e\\u0447\": \"\\u2713 \\ud83d\\ude00\"}" },
	{ "whitespace everywhere", "\t a\t=\t1\t# x\n [\ttbl\t]\t\n  [[ arr ]]  \n",
	  "{\"a\": 1, \"tbl\": {}, \"arr\": [{}]}" },
	{ "no trailing newline", "a = 'x'", "{\"a\": \"x\"}" },
	{ "codex config.toml", CODEX_CONFIG, CODEX_JSON },
};

static const InvalidCase invalid_cases[] = {
	{ "duplicate key", "a = 1\na = 2\n", 0, 2, 1, "duplicate key \"a\"" },
	{ "duplicate dotted key", "a.b = 1\na.b = 2\n", 0, 2, 3, "duplicate key \"b\"" },
	{ "duplicate key in inline table", "t = {x = 1, x = 2}\n", 0, 1, 13, "duplicate key \"x\"" },
	{ "table defined twice", "[a]\nx = 1\n[a]\n", 0, 3, 2, "table \"a\" already defined" },
	{ "super-table defined twice", "[a.b]\n[a]\n[a]\n", 0, 3, 2, "table \"a\" already defined" },
	{ "header over dotted-key table", "[fruit]\napple.color = 1\n[fruit.apple]\n", 0, 3, 8,
	  "table \"apple\" already defined" },
	{ "header over a value", "a = 1\n[a]\n", 0, 2, 2, "duplicate key \"a\"" },
	{ "dotted key into inline table", "a = {b = 1}\na.c = 2\n", 0, 2, 1,
	  "cannot add keys to inline table \"a\"" },
	{ "dotted keys inside inline table", "a = {b = {c = 1}, b.d = 2}\n", 0, 1, 19,
	  "cannot add keys to inline table \"b\"" },
	{ "header into inline table", "a = {b = 1}\n[a.c]\n", 0, 2, 2, "cannot extend inline table \"a\"" },
	{ "dotted key into closed table", "[a.b.c]\nz = 9\n[a]\nb.c.t = 1\n", 0, 4, 3,
	  "cannot add keys to table \"c\" defined by a [table] header" },
	{ "dotted key through a value", "a = 1\na.b = 2\n", 0, 2, 1,
	  "key \"a\" is already defined and is not a table" },
	{ "append to static array", "a = [1]\n[[a]]\n", 0, 2, 3, "cannot append to static array \"a\"" },
	{ "array of tables over table", "[a]\n[[a]]\n", 0, 2, 3, "not an array of tables" },
	{ "table over array of tables", "[[a]]\n[a]\n", 0, 2, 2, "table \"a\" already defined" },
	{ "key with no value", "a =\nb = 1\n", 0, 1, 4, "missing value for key \"a\"" },
	{ "key with no value before comment", "a = # nothing\n", 0, 1, 5, "missing value for key \"a\"" },
	{ "key with no equals sign", "abc\n", 0, 1, 4, "expected '=' after key" },
	{ "value with no key", "= 1\n", 0, 1, 1, "missing key before '='" },
	{ "missing newline between pairs", "a = 1 b = 2\n", 0, 1, 7, "expected newline after value" },
	{ "text after table header", "[a] x = 1\n", 0, 1, 5, "expected newline after table header" },
	{ "control character in string", "a = \"x\x01y\"\n", 0, 1, 7, "control character in string" },
	{ "tab allowed but DEL is not", "a = '\tx\x7F'\n", 0, 1, 8, "control character in string" },
	{ "control character in comment", "# hi\x7F\n", 0, 1, 5, "control character in comment" },
	{ "bare carriage return", "a = 1\rb = 2\n", 0, 1, 6, "bare carriage return" },
	{ "invalid UTF-8 byte", "a = \"\xFF\"\n", 0, 1, 6, "invalid UTF-8" },
	{ "overlong UTF-8", "a = 1\n# \xC0\xAF\n", 0, 2, 3, "invalid UTF-8" },
	{ "UTF-8 encoded surrogate", "a = '\xED\xA0\x80'\n", 0, 1, 6, "invalid UTF-8" },
	{ "truncated UTF-8", "a = 1 # \xE2\x9C", 0, 1, 9, "invalid UTF-8" },
	{ "NUL byte", "a = 1\n\0b = 2\n", 13, 2, 1, "NUL byte" },
	{ "invalid escape", "a = \"ok \\q\"\n", 0, 1, 9, "invalid escape sequence \\q" },
	{ "short unicode escape", "a = \"\\u12G4\"\n", 0, 1, 6, "invalid unicode escape" },
	{ "surrogate escape", "a = \"\\uD800\"\n", 0, 1, 6, "invalid unicode code point U+D800" },
	{ "out of range escape", "a = \"\\U00110000\"\n", 0, 1, 6, "invalid unicode code point U+110000" },
	{ "unterminated string", "a = \"abc\nb = 1\n", 0, 1, 9, "unterminated string" },
	{ "unterminated multi-line string", "a = '''abc\n", 0, 1, 5, "unterminated multi-line string" },
	{ "too many closing quotes", "a = \"\"\"x\"\"\"\"\"\"\n", 0, 1, 14, "too many quotes" },
	{ "multi-line string as key", "\"\"\"k\"\"\" = 1\n", 0, 1, 1,
	  "multi-line string cannot be used as a key" },
	{ "leading zero", "a = 012\n", 0, 1, 5, "leading zeros" },
	{ "trailing underscore", "a = 1_\n", 0, 1, 6, "underscore must be between digits" },
	{ "double underscore", "a = 1__2\n", 0, 1, 6, "underscore must be between digits" },
	{ "integer overflow", "a = 9223372036854775808\n", 0, 1, 5, "integer out of range" },
	{ "negative integer overflow", "a = -9223372036854775809\n", 0, 1, 5, "integer out of range" },
	{ "hex overflow", "a = 0x8000000000000000\n", 0, 1, 5, "integer out of range" },
	{ "sign on hex", "a = +0x1\n", 0, 1, 5, "sign not allowed on hexadecimal integer" },
	{ "bad octal digit", "a = 0o78\n", 0, 1, 8, "invalid character in number" },
	{ "fraction without digits", "a = 1.\n", 0, 1, 7, "expected a digit" },
	{ "exponent without digits", "a = 1e+\n", 0, 1, 8, "expected a digit" },
	{ "float out of range", "a = 1e400\n", 0, 1, 5, "float out of range" },
	{ "bare word value", "a = truee\n", 0, 1, 5, "invalid value" },
	{ "month out of range", "d = 2024-13-01\n", 0, 1, 10, "month out of range" },
	{ "day out of range", "d = 2023-02-29\n", 0, 1, 13, "day out of range" },
	{ "hour out of range", "t = 24:00:00\n", 0, 1, 5, "hour out of range" },
	{ "time without seconds", "t = 07:32\n", 0, 1, 10, "expected ':'" },
	{ "offset on local time", "t = 07:32:00Z\n", 0, 1, 13, "unexpected character" },
	{ "trailing comma in inline table", "a = {x = 1,}\n", 0, 1, 12, "trailing comma" },
	{ "newline in inline table", "a = {x = 1\n}\n", 0, 1, 11, "newline not allowed in inline table" },
	{ "missing comma in array", "a = [1 2]\n", 0, 1, 8, "expected ',' or ']' in array" },
	{ "leading comma in array", "a = [,1]\n", 0, 1, 6, "expected a value" },
	{ "unterminated array", "a = [1,\n", 0, 2, 1, "unterminated array" },
	{ "invalid bare key character", "a$b = 1\n", 0, 1, 2, "expected '=' after key" },
	{ "columns count characters", "a = \"\xC3\xA9\xC3\xA9\" x\n", 0, 1, 10,
	  "expected newline after value" },
	{ "error after multi-line string", "s = \"\"\"\nline\n\"\"\"\nx = 1\nx = 2\n", 0, 5, 1,
	  "duplicate key \"x\"" },
	{ "header without closing bracket", "[[a]\n", 0, 1, 4, "expected ']]'" },
	{ "empty header", "[]\n", 0, 1, 2, "invalid character in key" },
};

static json_t *expected_load(const char *text)
{
	json_error_t jerr;
	json_t *tree = json_loads(text, JSON_ALLOW_NUL, &jerr);

	if (!tree)
		fail_msg("bad expected JSON: %s (line %d col %d)", jerr.text, jerr.line, jerr.column);
	return tree;
}

static void valid_case_run(void **state)
{
	const ValidCase *tc = *state;
	json_t *expected = expected_load(tc->json);
	json_t *got = NULL;
	TomlError err;
	int rc = toml_parse(tc->toml, strlen(tc->toml), &got, &err);

	if (rc != 0)
		fail_msg("%s: parse failed at %d:%d: %s", tc->name, err.line, err.column, err.message);
	if (!json_equal(expected, got)) {
		char *dump = json_dumps(got, JSON_SORT_KEYS | JSON_ENCODE_ANY);

		print_error("%s: got %s\n", tc->name, dump ? dump : "(null)");
		free(dump);
		json_decref(got);
		json_decref(expected);
		fail_msg("%s: tree differs from expected JSON", tc->name);
	}
	json_decref(got);
	json_decref(expected);
}

static void invalid_case_run(void **state)
{
	const InvalidCase *tc = *state;
	size_t len = tc->len ? tc->len : strlen(tc->toml);
	json_t *got = NULL;
	TomlError err;
	int rc = toml_parse(tc->toml, len, &got, &err);

	if (rc == 0) {
		json_decref(got);
		fail_msg("%s: accepted an invalid document", tc->name);
	}
	assert_int_equal(rc, -EINVAL);
	assert_null(got);
	if (err.line != tc->line || err.column != tc->column || !strstr(err.message, tc->message))
		fail_msg("%s: got %d:%d \"%s\", want %d:%d \"...%s...\"", tc->name, err.line, err.column,
			 err.message, tc->line, tc->column, tc->message);
}

/* "a = " followed by count '[' and count ']'. */
static char *nested_arrays(int count)
{
	char *s = malloc((size_t)count * 2 + 8);

	assert_non_null(s);
	strcpy(s, "a = ");
	memset(s + 4, '[', (size_t)count);
	memset(s + 4 + count, ']', (size_t)count);
	s[4 + 2 * count] = '\0';
	return s;
}

static void depth_limit_arrays(void **state)
{
	char *ok = nested_arrays(64);
	char *deep = nested_arrays(65);
	json_t *got = NULL;
	TomlError err;

	(void)state;
	assert_int_equal(toml_parse(ok, strlen(ok), &got, &err), 0);
	json_decref(got);
	got = NULL;
	assert_int_equal(toml_parse(deep, strlen(deep), &got, &err), -EINVAL);
	assert_null(got);
	assert_int_equal(err.line, 1);
	assert_int_equal(err.column, 5 + 64); /* the 65th '[' */
	assert_non_null(strstr(err.message, "nesting deeper than 64 levels"));
	free(ok);
	free(deep);
}

/* "t = " followed by count nested {a=...} tables around 1. */
static void nested_inline_tables(char *text, int count)
{
	strcpy(text, "t = ");
	for (int i = 0; i < count; i++)
		strcat(text, "{a=");
	strcat(text, "1");
	for (int i = 0; i < count; i++)
		strcat(text, "}");
}

static void depth_limit_inline_tables(void **state)
{
	char text[1024];
	json_t *got = NULL;
	TomlError err;

	(void)state;
	nested_inline_tables(text, 64);
	assert_int_equal(toml_parse(text, strlen(text), &got, &err), 0);
	json_decref(got);
	got = NULL;
	nested_inline_tables(text, 65);
	assert_int_equal(toml_parse(text, strlen(text), &got, &err), -EINVAL);
	assert_null(got);
	assert_int_equal(err.column, 5 + 64 * 3);
	assert_non_null(strstr(err.message, "nesting deeper than 64 levels"));
}

/* A 64-part [a.a. ... .a] header is the deepest allowed; one more part is refused. */
static void depth_limit_headers(void **state)
{
	char text[512] = "[a";
	json_t *got = NULL;
	TomlError err;

	(void)state;
	for (int i = 1; i < 64; i++)
		strcat(text, ".a");
	strcat(text, "]\nx = 1\n");
	assert_int_equal(toml_parse(text, strlen(text), &got, &err), 0);
	json_decref(got);
	got = NULL;
	strcpy(strstr(text, "]"), ".a]\n");
	assert_int_equal(toml_parse(text, strlen(text), &got, &err), -EINVAL);
	assert_null(got);
	assert_int_equal(err.column, 2 + 64 * 2);
	assert_non_null(strstr(err.message, "nesting deeper than 64 levels"));
}

static void value_types(void **state)
{
	const char *text = "i = 7\nf = 7.0\ns = \"7\"\nb = true\nd = 07:00:00\n";
	json_t *got = NULL;
	TomlError err;

	(void)state;
	assert_int_equal(toml_parse(text, strlen(text), &got, &err), 0);
	assert_true(json_is_integer(json_object_get(got, "i")));
	assert_true(json_is_real(json_object_get(got, "f")));
	assert_true(json_is_string(json_object_get(got, "s")));
	assert_true(json_is_true(json_object_get(got, "b")));
	assert_string_equal(json_string_value(json_object_get(got, "d")), "07:00:00");
	json_decref(got);
}

static void codex_config_lookups(void **state)
{
	json_t *got = NULL;
	json_t *hooks;
	TomlError err;

	(void)state;
	assert_int_equal(toml_parse(CODEX_CONFIG, strlen(CODEX_CONFIG), &got, &err), 0);
	assert_string_equal(json_string_value(json_object_get(got, "model")), "gpt-5");
	assert_string_equal(
		json_string_value(json_object_get(
			json_object_get(json_object_get(got, "model_providers"), "mock"), "wire_api")),
		"responses");
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(json_object_get(got, "permissions"), "dev"), ":root")),
			    "read");
	hooks = json_object_get(json_object_get(got, "hooks"), "SessionStart");
	assert_true(json_is_array(hooks));
	assert_int_equal(json_array_size(hooks), 2);
	assert_int_equal(json_array_size(json_object_get(json_object_get(got, "sandbox_workspace_write"),
							 "writable_roots")),
			 2);
	json_decref(got);
}

static void arguments(void **state)
{
	json_t *got = NULL;
	TomlError err;

	(void)state;
	assert_int_equal(toml_parse(NULL, 0, &got, &err), 0);
	assert_true(json_is_object(got) && json_object_size(got) == 0);
	json_decref(got);
	got = NULL;
	assert_int_equal(toml_parse("a = 1", 5, NULL, &err), -EINVAL);
	assert_int_equal(toml_parse(NULL, 3, &got, &err), -EINVAL);
	assert_null(got);
	assert_int_equal(toml_parse("a =", 3, &got, NULL), -EINVAL);
	assert_null(got);
	/* len, not a terminator, bounds the input */
	assert_int_equal(toml_parse("a = 1\nb = ", 5, &got, &err), 0);
	assert_int_equal(json_integer_value(json_object_get(got, "a")), 1);
	json_decref(got);
}

static void key_with_escaped_nul(void **state)
{
	const char *text = "\"a\\u0000b\" = 1\n\"a\" = 2\n";
	json_t *got = NULL;
	TomlError err;

	(void)state;
	assert_int_equal(toml_parse(text, strlen(text), &got, &err), 0);
	assert_int_equal(json_object_size(got), 2);
	assert_int_equal(json_integer_value(json_object_getn(got, "a\0b", 3)), 1);
	json_decref(got);
}

static struct CMUnitTest *cases_build(size_t count, size_t stride, const void *cases, CMUnitTestFunction run)
{
	struct CMUnitTest *tests = calloc(count, sizeof(*tests));

	for (size_t i = 0; tests && i < count; i++) {
		const void *tc = (const char *)cases + i * stride;

		tests[i].name = *(const char *const *)tc; /* both case types start with their name */
		tests[i].test_func = run;
		tests[i].initial_state = (void *)tc;
	}
	return tests;
}

int main(void)
{
	const size_t n_valid = sizeof(valid_cases) / sizeof(valid_cases[0]);
	const size_t n_invalid = sizeof(invalid_cases) / sizeof(invalid_cases[0]);
	const struct CMUnitTest other[] = {
		cmocka_unit_test(depth_limit_arrays),	cmocka_unit_test(depth_limit_inline_tables),
		cmocka_unit_test(depth_limit_headers),	cmocka_unit_test(value_types),
		cmocka_unit_test(codex_config_lookups), cmocka_unit_test(arguments),
		cmocka_unit_test(key_with_escaped_nul),
	};
	struct CMUnitTest *valid = cases_build(n_valid, sizeof(valid_cases[0]), valid_cases, valid_case_run);
	struct CMUnitTest *invalid =
		cases_build(n_invalid, sizeof(invalid_cases[0]), invalid_cases, invalid_case_run);
	int failed = 1;

	if (valid && invalid) {
		failed = _cmocka_run_group_tests("toml_valid", valid, n_valid, NULL, NULL);
		failed += _cmocka_run_group_tests("toml_invalid", invalid, n_invalid, NULL, NULL);
		failed += cmocka_run_group_tests_name("toml_other", other, NULL, NULL);
	}
	free(valid);
	free(invalid);
	return failed ? 1 : 0;
}
