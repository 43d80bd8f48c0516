// Tests of the Jinja2 subset interpreter (qiusuo/jinja/jinja.h).
//
// The golden tables below (kWhitespace ... kOptions) were produced with Python Jinja2 3.1.6:
// each template was rendered with the listed JSON context in
// jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
// extensions=["jinja2.ext.loopcontrols"]) plus transformers' tojson filter and raise_exception /
// strftime_now globals (kOptions: the trim_blocks / lstrip_blocks / keep_trailing_newline given
// per row), by a throwaway script that is not part of the repository. Only templates that
// Python renders without an error are in the tables; errors are tested by hand further down.
#include "qiusuo/jinja/jinja.h"

#include <gtest/gtest.h>

#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "qiusuo/core/error.h"

namespace {

using nlohmann::json;
using nlohmann::ordered_json;
using qs::jinja::Options;
using qs::jinja::Template;

struct Golden {
  const char* tmpl;
  const char* context;  // JSON object, or nullptr for none
  const char* expected;
};

struct OptionsGolden {
  const char* tmpl;
  bool trim_blocks, lstrip_blocks, keep_trailing_newline;
  const char* expected;
};

// clang-format off
const Golden kWhitespace[] = {
    {"a\n"
     "{% if true %}\n"
     "b\n"
     "{% endif %}\n"
     "c",
     nullptr,
     "a\n"
     "b\n"
     "c"},
    {"a\n"
     "  {% if true %}\n"
     "  b\n"
     "  {% endif %}\n"
     "c",
     nullptr,
     "a\n"
     "  b\n"
     "c"},
    {"a\n"
     "  {%- if true %}\n"
     "  b\n"
     "  {%- endif %}\n"
     "c",
     nullptr,
     "a  bc"},
    {"a\n"
     "  {% if true -%}\n"
     "  b\n"
     "  {% endif -%}\n"
     "c",
     nullptr,
     "a\n"
     "b\n"
     "c"},
    {"a\n"
     "  {%+ if true %}\n"
     "  b\n"
     "  {%+ endif %}\n"
     "c",
     nullptr,
     "a\n"
     "    b\n"
     "  c"},
    {"a\n"
     "  {% if true +%}\n"
     "  b\n"
     "  {% endif +%}\n"
     "c",
     nullptr,
     "a\n"
     "\n"
     "  b\n"
     "\n"
     "c"},
    {"  {{ 'x' }}  \n"
     "  {{- 'y' -}}  \n"
     " z",
     nullptr,
     "  xyz"},
    {"a {# comment #}\n"
     "b\n"
     "  {# c2 #}\n"
     "c\n"
     "  {#- c3 -#}  \n"
     "d",
     nullptr,
     "a b\n"
     "cd"},
    {"x\t\t{% if true %}y{% endif %}\n",
     nullptr,
     "x\t\ty"},
    {"x\n"
     "\t\t{% if true %}y{% endif %}\n"
     "\n",
     nullptr,
     "x\n"
     "y"},
    {"{% for i in range(3) %}\n"
     "  {{ i }}\n"
     "{% endfor %}\n",
     nullptr,
     "  0\n"
     "  1\n"
     "  2\n"},
    {"{% for i in range(3) -%}\n"
     "  {{ i }}\n"
     "{%- endfor %}",
     nullptr,
     "012"},
    {"{%- for i in range(3) %}{{ i }},{% endfor -%}   \n",
     nullptr,
     "0,1,2,"},
    {"line1\r\n"
     "line2\r\n"
     "{% if true %}\r\n"
     "X\r\n"
     "{% endif %}\r\n"
     "end\r\n"
     "\r\n",
     nullptr,
     "line1\n"
     "line2\n"
     "X\n"
     "end\n"},
    {"a\rb\r{% if true %}\rc{% endif %}",
     nullptr,
     "a\n"
     "b\n"
     "c"},
    {"  {% set x = 1 %}  \n"
     "{{ x }}",
     nullptr,
     "  \n"
     "1"},
    {"{% raw %}  {{ x }} {% if %}{% endraw %}",
     nullptr,
     "  {{ x }} {% if %}"},
    {"  {% raw %}\n"
     "  {{ x }}\n"
     "  {% endraw %}\n"
     "  z",
     nullptr,
     "\n"
     "  {{ x }}\n"
     "  z"},
    {"{%- raw -%}  a  {%- endraw -%}  b",
     nullptr,
     "ab"},
    {"{{ 'a' }}\n"
     "{{ 'b' }}\n",
     nullptr,
     "a\n"
     "b"},
    {"{% if true %}   {% endif %}|",
     nullptr,
     "   |"},
    {"\u00a0 {% if true %}x{% endif %}",
     nullptr,
     "x"},
    {"text\n"
     "\u3000{% if true %}x{% endif %}",
     nullptr,
     "text\n"
     "x"},
    {"{{- 'a' }}  {{- 'b' }}",
     nullptr,
     "ab"},
    {"{% macro m() -%}\n"
     "  body\n"
     "{%- endmacro %}[{{ m() }}]",
     nullptr,
     "[body]"},
    {"{% if true %}A{% else %}B{% endif %}\n"
     "{% if false %}A{% elif true %}C{% endif %}",
     nullptr,
     "AC"},
    {"{#- x -#}\n"
     "\n"
     " y",
     nullptr,
     "y"},
    {"{% if true %}{# c #}\n"
     "X{% endif %}",
     nullptr,
     "X"},
    {"a\n"
     "    {% for x in [1] %}\n"
     "    {{ x }}\n"
     "    {% endfor %}\n",
     nullptr,
     "a\n"
     "    1\n"},
};

const Golden kExpressions[] = {
    {"{{ 1 + 2 * 3 - 4 / 2 }}",
     nullptr,
     "5.0"},
    {"{{ 7 // 2 }}{{ -7 // 2 }}{{ 7 % 3 }}{{ -7 % 3 }}{{ 7 % -3 }}{{ 2**10 }}{{ 2**-2 }}{{ 2.0 ** 3 }}",
     nullptr,
     "3-412-210240.258.0"},
    {"{{ 1 / 3 }}{{ 2 / 3 }}{{ 10 / 4 }}{{ 0.1 + 0.2 }}{{ 1e100 }}{{ 1.5e-10 }}{{ 123456789.123 }}{{ 1e22 }}{{ 3.0 }}{{ -1.5 }}",
     nullptr,
     "0.33333333333333330.66666666666666662.50.300000000000000041e+1001.5e-10123456789.1231e+223.0-1.5"},
    {"{{ 'ab' ~ 1 ~ none ~ true ~ 1.5 ~ [1] }}",
     nullptr,
     "ab1NoneTrue1.5[1]"},
    {"{{ 'a' 'b' \"c\" }}",
     nullptr,
     "abc"},
    {"{{ (1, 2) + (3,) }}{{ [1, 2] + [3] }}",
     nullptr,
     "(1, 2, 3)[1, 2, 3]"},
    {"{{ 1 < 2 and 2 < 3 }}{{ 1 == 1.0 }}{{ 'a' != 'b' }}{{ [1,[2]] == [1,[2]] }}{{ {'a':1} == {'a':1} }}{{ (1,2) == [1,2] }}",
     nullptr,
     "TrueTrueTrueTrueTrueFalse"},
    {"{{ 1 if 0 else 2 }}{{ 'y' if 'x' }}{{ none or 0 or '' or 'last' }}{{ 1 and 2 and 3 }}{{ 0 and 1/0 }}",
     nullptr,
     "2ylast30"},
    {"{{ not none }}{{ not [] }}{{ not [0] }}{{ not {} }}{{ not 0.0 }}{{ not 'x' }}",
     nullptr,
     "TrueTrueFalseTrueTrueFalse"},
    {"{{ 'ell' in 'hello' }}{{ 1 in [1,2] }}{{ 'a' in {'a':1} }}{{ 3 not in [1] }}{{ 'x' in '' }}{{ '' in 'x' }}",
     nullptr,
     "TrueTrueTrueTrueFalseTrue"},
    {"{{ [1,2,3][1:] }}{{ [1,2,3][:-1] }}{{ [1,2,3][::-1] }}{{ [1,2,3][-1] }}{{ 'hello'[1:4] }}{{ 'hello'[-3:] }}{{ 'hello'[::2] }}{{ 'hello'[5:1:-1] }}{{ [1,2,3][10:] }}",
     nullptr,
     "[2, 3][1, 2][3, 2, 1]3ellllohlooll[]"},
    {"{{ '日本語テキスト'[2:4] }}{{ '日本語'[-1] }}{{ '😀ab'[0] }}{{ '😀ab'|length }}{{ 'é'|length }}",
     nullptr,
     "語テ語😀31"},
    {"{{ {'a': 1}['a'] }}{{ {'a': 1}.a }}{{ {'a': {'b': [1, 2]}}.a.b[1] }}{{ {'a': 1}['b'] }}|{{ [1,2].0 }}",
     nullptr,
     "112|1"},
    {"{{ -(-3) }}{{ +3 }}{{ -3|abs }}{{ (-3)|abs }}{{ -(['a','b']|length) }}{{ -3|abs + 1 }}",
     nullptr,
     "3333-24"},
    {"{{ 1 < 2 < 3 }}{{ 1 < 3 < 2 }}{{ 1 == 1 == 1 }}{{ 2 > 1 >= 1 }}",
     nullptr,
     "TrueFalseTrueTrue"},
    {"{{ none }}{{ None }}{{ True }}{{ false }}{{ [none, true, 'x', 1.0, (1,), {'k': 'v'}] }}",
     nullptr,
     "NoneNoneTrueFalse[None, True, 'x', 1.0, (1,), {'k': 'v'}]"},
    {"{{ \"it's\" }}{{ ['it\\'s', \"a\\\"b\", 'tab\\t', 'nl\\n', 'bs\\\\'] }}",
     nullptr,
     "it's[\"it's\", 'a\"b', 'tab\\t', 'nl\\n', 'bs\\\\']"},
    {"{{ 'a\\x41\\u0042\\U0001F600\\101\\z' }}",
     nullptr,
     "aAB😀A\\z"},
    {"{{ {'b': 2, 'a': 1} }}{{ {1: 'x', 2.5: 'y', none: 'z', true: 't'} }}{{ {} }}{{ [] }}{{ () }}",
     nullptr,
     "{'b': 2, 'a': 1}{1: 't', 2.5: 'y', None: 'z'}{}[]()"},
    {"{{ 0x1F }}{{ 0o17 }}{{ 0b101 }}{{ 1_000_000 }}{{ 1_0.5_0 }}{{ 000 }}",
     nullptr,
     "31155100000010.50"},
    {"{{ 10 * 'ab' }}{{ 'ab' * 0 }}{{ [0] * 3 }}{{ 3 * [1] }}",
     nullptr,
     "abababababababababab[0, 0, 0][1, 1, 1]"},
    {"{{ true + 1 }}{{ true * 3 }}{{ 5 / true }}{{ 1.5 // 1 }}{{ -1.5 // 1 }}{{ 5.5 % 2 }}{{ -5.5 % 2 }}",
     nullptr,
     "235.01.0-2.01.50.5"},
    {"{{ x }}|{{ x is defined }}{{ x is undefined }}{{ x|default('d') }}{{ x or 'o' }}{{ not x }}{{ x ~ 'c' }}{{ [x]|length }}{{ x|length }}{{ x|list }}",
     nullptr,
     "|FalseTruedoTruec10[]"},
    {"{% for c in x %}{{ c }}{% else %}empty{% endfor %}",
     nullptr,
     "empty"},
    {"{{ x == none }}{{ x is none }}{{ none is none }}{{ x == x }}",
     nullptr,
     "FalseFalseTrueTrue"},
    {"{{ 'abc' is string }}{{ 1 is string }}{{ [1] is sequence }}{{ {} is sequence }}{{ 'a' is iterable }}{{ 1 is iterable }}{{ x is iterable }}{{ none is mapping }}",
     nullptr,
     "TrueFalseTrueTrueTrueFalseTrueFalse"},
    {"{{ 1 is number }}{{ 1.5 is number }}{{ 'a' is number }}{{ 1 is integer }}{{ 1.0 is integer }}{{ true is boolean }}{{ 1 is boolean }}{{ true is true }}{{ 1 is true }}{{ false is false }}{{ 0 is false }}",
     nullptr,
     "TrueTrueFalseTrueFalseTrueFalseTrueFalseTrueFalse"},
    {"{{ 2 is even }}{{ 3 is odd }}{{ 9 is divisibleby 3 }}{{ 9 is divisibleby(4) }}{{ 2 is eq 2 }}{{ 2 is equalto 3 }}{{ 2 is ne 3 }}{{ 2 is gt 1 }}{{ 2 is lt 1 }}{{ 2 is ge 2 }}{{ 2 is le 1 }}{{ 2 is greaterthan 1 }}{{ 2 is lessthan 3 }}",
     nullptr,
     "TrueTrueTrueFalseTrueFalseTrueTrueFalseTrueFalseTrueTrue"},
    {"{{ 'a' is in 'abc' }}{{ 'z' is in ['a'] }}{{ 'abc' is lower }}{{ 'Abc' is lower }}{{ 'ABC' is upper }}{{ '123' is upper }}{{ none is sameas none }}{{ 1 is sameas 1 }}",
     nullptr,
     "TrueFalseTrueFalseTrueFalseTrueTrue"},
    {"{{ 'upper' is filter }}{{ 'nope' is filter }}{{ 'odd' is test }}{{ range is callable }}{{ 1 is callable }}",
     nullptr,
     "TrueFalseTrueTrueFalse"},
    {"{{ x is not defined }}{{ 1 is not none }}{{ not 1 is none }}",
     nullptr,
     "TrueTrueTrue"},
};

const Golden kFilters[] = {
    {"{{ '  a b  '|trim }}|{{ 'xxhixx'|trim('x') }}|{{ ' a '|trim|upper }}|{{ 'Hello'|lower }}|{{ 'hello'|upper }}|{{ 'hELLO wORLD'|capitalize }}|{{ 'hello-world foo(bar) [x] <y> {z}'|title }}",
     nullptr,
     "a b|hi|A|hello|HELLO|Hello world|Hello-World Foo(Bar) [X] <Y> {Z}"},
    {"{{ [1,2,3]|length }}{{ 'abc'|count }}{{ {'a':1}|length }}{{ [1,2,3]|first }}{{ [1,2,3]|last }}{{ []|first }}|{{ 'xyz'|first }}",
     nullptr,
     "33113|x"},
    {"{{ [3,1,2]|sort }}{{ [3,1,2]|sort(reverse=true) }}{{ ['b','a','C']|sort }}{{ ['b','a','C']|sort(true) }}{{ [{'n':2},{'n':1}]|sort(attribute='n') }}",
     nullptr,
     "[1, 2, 3][3, 2, 1]['a', 'b', 'C']['C', 'b', 'a'][{'n': 1}, {'n': 2}]"},
    {"{{ [{'a':1,'b':2},{'a':1,'b':1},{'a':0,'b':3}]|sort(attribute='a,b') }}",
     nullptr,
     "[{'a': 0, 'b': 3}, {'a': 1, 'b': 1}, {'a': 1, 'b': 2}]"},
    {"{{ [1,2,2,3,1]|unique|list }}{{ ['a','A','b']|unique|list }}{{ ['a','A','b']|unique(true)|list }}",
     nullptr,
     "[1, 2, 3]['a', 'b']['a', 'A', 'b']"},
    {"{{ [1,2,3]|join }}{{ [1,2,3]|join(', ') }}{{ ['a','b']|join('-') }}{{ [{'n':'x'},{'n':'y'}]|join(',', attribute='n') }}{{ 'abc'|join('.') }}",
     nullptr,
     "1231, 2, 3a-bx,ya.b.c"},
    {"{{ [1,2,3]|reverse|list }}{{ 'abc'|reverse }}{{ (1,2)|reverse|list }}{{ {'a':1,'b':2}|reverse|list }}",
     nullptr,
     "[3, 2, 1]cba[2, 1]['b', 'a']"},
    {"{{ [1,2,3]|sum }}{{ [1.5,2]|sum }}{{ [{'v':1},{'v':2}]|sum(attribute='v') }}{{ [[1],[2]]|sum(start=[]) }}",
     nullptr,
     "63.53[1, 2]"},
    {"{{ [3,1,2]|min }}{{ [3,1,2]|max }}{{ ['b','A']|min }}{{ ['b','A']|max }}{{ []|max }}|{{ [{'a':2},{'a':5}]|max(attribute='a') }}",
     nullptr,
     "13Ab|{'a': 5}"},
    {"{{ 'hello'|replace('l', 'L') }}{{ 'hello'|replace('l', 'L', 1) }}{{ 'abc'|replace('', '-') }}{{ 123|replace('2', 'x') }}",
     nullptr,
     "heLLoheLlo-a-b-c-1x3"},
    {"{{ 3.7|int }}{{ '42'|int }}{{ ' -7 '|int }}{{ '4.9'|int }}{{ 'abc'|int }}{{ 'abc'|int(5) }}{{ '0x1A'|int(0, 16) }}{{ '1_000'|int }}{{ none|int }}{{ true|int }}",
     nullptr,
     "342-740526100001"},
    {"{{ '3.5'|float }}{{ 3|float }}{{ 'x'|float }}{{ 'x'|float(1.5) }}{{ '1e3'|float }}{{ ' 2 '|float }}{{ 'inf'|float }}{{ 'nan'|float }}",
     nullptr,
     "3.53.00.01.51000.02.0infnan"},
    {"{{ 3.14159|round }}{{ 3.14159|round(2) }}{{ 3.5|round }}{{ 4.5|round }}{{ 2.675|round(2) }}{{ 3.14159|round(2, 'floor') }}{{ 3.14159|round(2, 'ceil') }}{{ 7|round }}{{ 1234|round(-2) }}{{ 1250|round(-2) }}",
     nullptr,
     "3.03.144.04.02.673.143.15712001200"},
    {"{{ -3|abs }}{{ -3.5|abs }}{{ 'x'|string }}{{ 1|string }}{{ [1]|string }}{{ none|string }}",
     nullptr,
     "33.5x1[1]None"},
    {"{{ x|default('a') }}{{ none|default('a') }}{{ ''|default('a') }}{{ ''|default('a', true) }}{{ 0|d('z', true) }}{{ false|default('f') }}",
     nullptr,
     "aNoneazFalse"},
    {"{{ 'line1\\nline2\\n\\nline4'|indent }}|{{ 'line1\\nline2'|indent(2, true) }}|{{ 'a\\n\\nb'|indent(2, blank=true) }}|{{ 'a\\nb'|indent('> ') }}|{{ ''|indent }}|{{ 'a\\n'|indent(first=true) }}",
     nullptr,
     "line1\n"
     "    line2\n"
     "\n"
     "    line4|  line1\n"
     "  line2|a\n"
     "  \n"
     "  b|a\n"
     "> b||    a\n"},
    {"{{ {'b':1,'a':2}|dictsort }}{{ {'b':1,'a':2}|dictsort(by='value') }}{{ {'b':1,'a':2}|dictsort(reverse=true) }}{{ {'B':1,'a':2}|dictsort }}{{ {'B':1,'a':2}|dictsort(true) }}",
     nullptr,
     "[('a', 2), ('b', 1)][('b', 1), ('a', 2)][('b', 1), ('a', 2)][('a', 2), ('B', 1)][('B', 1), ('a', 2)]"},
    {"{% for k, v in {'b':1,'a':2}|items %}{{ k }}{{ v }}{% endfor %}{{ {'a':1}|items|list }}{{ x|items|list }}",
     nullptr,
     "b1a2[('a', 1)][]"},
    {"{{ [1,2,3,4]|select('odd')|list }}{{ [1,2,3,4]|reject('odd')|list }}{{ [0,1,'',none,'a']|select|list }}{{ [1,2,3]|select('gt', 1)|list }}{{ ['a','b']|select('in', ['b','c'])|list }}{{ [1,2,3]|select('equalto', 2)|list }}",
     nullptr,
     "[1, 3][2, 4][1, 'a'][2, 3]['b'][2]"},
    {"{{ [{'a':1},{'a':0},{'b':1}]|selectattr('a')|list }}{{ [{'a':1},{'a':0},{'b':1}]|rejectattr('a')|list }}{{ [{'a':1},{'a':2}]|selectattr('a', 'equalto', 2)|list }}{{ [{'a':{'b':1}},{'a':{'b':2}}]|selectattr('a.b', '==', 1)|list }}{{ [{'a':1},{'b':2}]|selectattr('a', 'defined')|list }}{{ [{'a':1},{'b':2}]|selectattr('a', 'undefined')|list }}",
     nullptr,
     "[{'a': 1}][{'a': 0}, {'b': 1}][{'a': 2}][{'a': {'b': 1}}][{'a': 1}][{'b': 2}]"},
    {"{{ [{'a':1},{'a':2}]|map(attribute='a')|list }}{{ [{'a':1},{}]|map(attribute='a', default=9)|list }}{{ ['a','b']|map('upper')|list }}{{ [1.5,2.5]|map('round')|list }}{{ ['a,b','c']|map('replace', ',', ';')|list }}{{ [[1,2],[3]]|map('length')|list }}{{ [{'a':[1,2]}]|map(attribute='a.1')|list }}",
     nullptr,
     "[1, 2][1, 9]['A', 'B'][2.0, 2.0]['a;b', 'c'][2, 1][2]"},
    {"{{ {'a':1,'b':[1,'x',none,true,2.5]}|tojson }}|{{ [1,{'k':'v'}]|tojson(indent=2) }}|{{ 'é\"\\\\/\\n\\t\\u0001'|tojson }}|{{ none|tojson }}|{{ (1,2)|tojson }}|{{ {'a':[]}|tojson(indent=4) }}|{{ {'b':1,'a':2}|tojson(sort_keys=true) }}|{{ 'é'|tojson(ensure_ascii=true) }}|{{ 1.0|tojson }}|{{ {1:2}|tojson }}",
     nullptr,
     "{\"a\": 1, \"b\": [1, \"x\", null, true, 2.5]}|[\n"
     "  1,\n"
     "  {\n"
     "    \"k\": \"v\"\n"
     "  }\n"
     "]|\"é\\\"\\\\/\\n\\t\\u0001\"|null|[1, 2]|{\n"
     "    \"a\": []\n"
     "}|{\"a\": 2, \"b\": 1}|\"\\u00e9\"|1.0|{\"1\": 2}"},
    {"{{ [1,2]|tojson(separators=(',', ':')) }}|{{ {'a':1}|tojson(indent='\\t') }}",
     nullptr,
     "[1,2]|{\n"
     "\t\"a\": 1\n"
     "}"},
    {"{{ 'a b  c\\nd'|wordcount }}{{ 'hello'|center(11) }}|{{ 'hello'|center(10) }}|{{ 'a'|center(4) }}|",
     nullptr,
     "4   hello   |  hello   | a  |"},
    {"{{ 'foo bar baz qux'|truncate(9) }}|{{ 'foo bar baz qux'|truncate(9, true) }}|{{ 'foo bar baz qux'|truncate(11) }}|{{ 'foo bar baz qux'|truncate(11, false, '...', 0) }}",
     nullptr,
     "foo...|foo ba...|foo bar baz qux|foo bar..."},
    {"{{ [1,2,3,4,5]|batch(2)|list }}{{ [1,2,3,4,5]|batch(2, 'x')|list }}{{ [1,2,3,4,5]|slice(2)|list }}{{ [1,2,3,4,5]|slice(3, 0)|list }}",
     nullptr,
     "[[1, 2], [3, 4], [5]][[1, 2], [3, 4], [5, 'x']][[1, 2, 3], [4, 5]][[1, 2], [3, 4], [5, 0]]"},
    {"{{ '<a href=\"x\">&\\'</a>'|e }}{{ '<b>'|escape }}{{ '<b>'|safe }}",
     nullptr,
     "&lt;a href=&#34;x&#34;&gt;&amp;&#39;&lt;/a&gt;&lt;b&gt;<b>"},
    {"{{ '%s=%d'|format('a', 3) }}{{ '%(x)s!'|format(x='hi') }}{{ '%5.1f|%-4s|%04d|%x|%r'|format(3.14159, 'ab', 7, 255, 'q') }}",
     nullptr,
     "a=3hi!  3.1|ab  |0007|ff|'q'"},
    {"{{ {'a': 5}|attr('a') }}|{{ {'a': 5}|attr('items') is callable }}",
     nullptr,
     "|True"},
    {"{{ 'abc'|list }}{{ {'a':1}|list }}{{ (1,2)|list }}{{ x|list }}{{ 'ab'|first }}",
     nullptr,
     "['a', 'b', 'c']['a'][1, 2][]a"},
};

const Golden kMethods[] = {
    {"{{ 'a,b,,c'.split(',') }}{{ ' a  b '.split() }}{{ 'a b c'.split(' ', 1) }}{{ 'a b c'.split(none, 1) }}{{ 'a,b,c'.rsplit(',', 1) }}{{ '  a b  '.rsplit(none, 1) }}{{ ''.split() }}{{ ''.split(',') }}{{ 'abc'.split('abc') }}",
     nullptr,
     "['a', 'b', '', 'c']['a', 'b']['a', 'b c']['a', 'b c']['a,b', 'c']['  a', 'b'][]['']['', '']"},
    {"{{ '  x  '.strip() }}|{{ '  x  '.lstrip() }}|{{ '  x  '.rstrip() }}|{{ 'xyhixy'.strip('xy') }}|{{ '\\n\\tx\\u3000'.strip() }}|",
     nullptr,
     "x|x  |  x|hi|x|"},
    {"{{ 'Hello'.startswith('He') }}{{ 'Hello'.startswith(('x', 'H')) }}{{ 'Hello'.endswith('lo') }}{{ 'Hello'.startswith('l', 2) }}{{ 'Hello'.endswith('l', 0, 4) }}",
     nullptr,
     "TrueTrueTrueTrueTrue"},
    {"{{ 'hello'.find('l') }}{{ 'hello'.rfind('l') }}{{ 'hello'.find('z') }}{{ 'hello'.index('e') }}{{ 'hello'.count('l') }}{{ 'aaaa'.count('aa') }}{{ 'hello'.find('l', 3) }}{{ '日本語'.find('語') }}",
     nullptr,
     "23-112232"},
    {"{{ 'a-b-c'.replace('-', '+') }}{{ 'a-b-c'.replace('-', '', 1) }}{{ ', '.join(['x','y']) }}{{ ''.join('abc') }}",
     nullptr,
     "a+b+cab-cx, yabc"},
    {"{{ 'hello world'.title() }}{{ 'hELLO'.capitalize() }}{{ 'Hello'.swapcase() }}{{ 'ABC'.lower() }}{{ 'abc'.upper() }}{{ \"it's a TEST-case\".title() }}",
     nullptr,
     "Hello WorldHellohELLOabcABCIt'S A Test-Case"},
    {"{{ 'ab'.center(6, '*') }}{{ 'ab'.ljust(5, '.') }}{{ 'ab'.rjust(5) }}{{ '42'.zfill(5) }}{{ '-42'.zfill(5) }}",
     nullptr,
     "**ab**ab...   ab00042-0042"},
    {"{{ '123'.isdigit() }}{{ '12a'.isdigit() }}{{ 'abc'.isalpha() }}{{ 'ab1'.isalnum() }}{{ '  '.isspace() }}{{ ''.isspace() }}{{ 'abc'.islower() }}{{ 'ABC'.isupper() }}",
     nullptr,
     "TrueFalseTrueTrueTrueFalseTrueTrue"},
    {"{{ 'a=b=c'.partition('=') }}{{ 'a=b=c'.rpartition('=') }}{{ 'abc'.partition('x') }}{{ 'prefix_x'.removeprefix('prefix_') }}{{ 'x.txt'.removesuffix('.txt') }}",
     nullptr,
     "('a', '=', 'b=c')('a=b', '=', 'c')('abc', '', '')xx"},
    {"{{ 'a\\nb\\r\\nc'.splitlines() }}{{ 'a\\nb'.splitlines(true) }}",
     nullptr,
     "['a', 'b', 'c']['a\\n', 'b']"},
    {"{{ '{} and {}'.format(1, 'x') }}{{ '{1}{0}'.format('a', 'b') }}{{ '{name}!'.format(name='n') }}{{ '{:>5}|{:<4}|{:^5}|{:05.1f}|{:+d}|{!r}'.format('a', 'b', 'c', 3.14159, 5, 'q') }}{{ '{{}}'.format() }}",
     nullptr,
     "1 and xban!    a|b   |  c  |003.1|+5|'q'{}"},
    {"{{ {'a':1,'b':2}.items()|list }}{{ {'a':1}.keys()|list }}{{ {'a':1}.values()|list }}{{ {'a':1}.get('a') }}{{ {'a':1}.get('z', 'dflt') }}{{ {'a':1}.get('z') }}",
     nullptr,
     "[('a', 1), ('b', 2)]['a'][1]1dfltNone"},
    {"{{ [1,2,3].index(2) }}{{ [1,2,2].count(2) }}{{ (1,2).index(2) }}",
     nullptr,
     "121"},
    {"{{ {'a':1}.items() }}{{ {'a':1}.keys() }}{{ {'a':1}.values() }}{{ {'a':1}.items()|length }}{{ {'a':1}.items() is sequence }}",
     nullptr,
     "dict_items([('a', 1)])dict_keys(['a'])dict_values([1])1False"},
    {"{{ 'abc'.nope }}|{{ 'abc'.nope is defined }}{{ [1].nope is defined }}{{ none.x is defined }}",
     nullptr,
     "|FalseFalseFalse"},
};

const Golden kStatements[] = {
    {"{% for x in [1,2,3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "1032TrueFalse3|2121FalseFalse3|3210FalseTrue3|"},
    {"{% for x in 'abc' %}{{ loop.cycle('o', 'e') }}{{ x }}{% endfor %}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "oaeboc"},
    {"{% for x in [1,1,2,2,1] %}{% if loop.changed(x) %}{{ x }}{% endif %}{% endfor %}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "121"},
    {"{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}{% for a, (b, c) in [(1, (2, 3))] %}{{ a }}{{ b }}{{ c }}{% endfor %}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "37123"},
    {"{% for k, v in {'x': 1, 'y': 2}.items() %}{{ k }}={{ v }}{{ ',' if not loop.last }}{% endfor %}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "x=1,y=2"},
    {"{% for x in [1,2,3,4,5] if x is odd %}{{ x }}{{ loop.index }}/{{ loop.length }} {% endfor %}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "11/3 32/3 53/3 "},
    {"{% for i in range(3) %}{% for j in range(2) %}{{ i }}{{ j }}{{ loop.index }}{% if loop.last %};{% endif %}{% endfor %}{{ loop.index }}|{% endfor %}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "001012;1|101112;2|201212;3|"},
    {"{% for i in range(5) %}{% if i == 1 %}{% continue %}{% elif i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "02"},
    {"{% for i in range(2) %}{% for j in range(5) %}{% if j == 2 %}{% break %}{% endif %}{{ i }}{{ j }} {% endfor %}{% endfor %}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "00 01 10 11 "},
    {"{% set ns = namespace(total=0, items=[]) %}{% for i in range(4) %}{% set ns.total = ns.total + i %}{% set ns.items = ns.items + [i] %}{% endfor %}{{ ns.total }}{{ ns.items }}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "6[0, 1, 2, 3]"},
    {"{% set ns = namespace() %}{% set ns.a = 1 %}{{ ns.a }}{{ ns.b is defined }}{% set ns2 = namespace({'k': 'v'}, z=1) %}{{ ns2.k }}{{ ns2.z }}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "1Falsev1"},
    {"{% set x = 1 %}{% for i in range(2) %}{% set x = x + 10 %}{{ x }}{% endfor %}{{ x }}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "11111"},
    {"{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c = 1, %}{{ c }}{% set t = (1, 2) %}{% set p, q = t %}{{ q }}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "12(1,)2"},
    {"{% set s %}inner {{ 1 + 1 }}{% endset %}[{{ s }}]{% set u | upper %}abc{% endset %}{{ u }}{% set v | trim | upper %}  xy  {% endset %}[{{ v }}]",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "[inner 2]ABC[XY]"},
    {"{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('A') }} {{ greet('B', 'Hi') }} {{ greet(greeting='Yo', name='C') }} {{ greet() }}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "Hello, A! Hi, B! Yo, C! Hello, !"},
    {"{% macro m(a, b) %}[{{ a }}|{{ b }}|{{ varargs }}|{{ kwargs }}]{% endmacro %}{{ m(1) }}{{ m(1, 2, 3, k=4) }}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "[1||()|{}][1|2|(3,)|{'k': 4}]"},
    {"{% macro outer() %}<{{ caller() }}>{% endmacro %}{% call outer() %}inside{% endcall %}{% macro li(items) %}{% for i in items %}{{ caller(i) }}{% endfor %}{% endmacro %}{% call(x) li([1,2]) %}({{ x }}){% endcall %}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "<inside>(1)(2)"},
    {"{% macro rec(n) %}{{ n }}{% if n > 0 %}{{ rec(n - 1) }}{% endif %}{% endmacro %}{{ rec(3) }}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "3210"},
    {"{% filter upper %}hello {{ 'w' }}{% endfilter %}{% filter replace('a', 'b')|upper %}aaa{% endfilter %}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "HELLO WBBB"},
    {"{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a }}|{% with %}{% set q = 1 %}{{ q }}{% endwith %}{{ q }}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "3|1"},
    {"{% if x is defined %}x{% elif y %}y{% else %}none{% endif %}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "none"},
    {"{% if [] %}a{% elif {} %}b{% elif 0 %}c{% elif '0' %}d{% endif %}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "d"},
    {"{% print 'p' %}{% print 1, 2 %}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "p12"},
    {"{{ range(5) | list }}{{ range(2, 10, 3)|list }}{{ range(5, 0, -2)|list }}{{ dict(a=1, b=2) }}{{ dict([('x', 1)]) }}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "[0, 1, 2, 3, 4][2, 5, 8][5, 3, 1]{'a': 1, 'b': 2}{'x': 1}"},
    {"{% set j = joiner(', ') %}{% for x in [1,2,3] %}{{ j() }}{{ x }}{% endfor %}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "1, 2, 3"},
    {"{% for m in messages %}{{ m.role }}:{{ m['content'] }};{% endfor %}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "system: You are helpful. ;user:Hi;assistant:None;user:Bye;"},
    {"{{ messages[0].content|trim }}{{ messages|length }}{{ messages[-1]['role'] }}{{ (messages|last).role }}{{ messages[0] }}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "You are helpful.4useruser{'content': ' You are helpful. ', 'role': 'system'}"},
    {"{% for m in messages|selectattr('role', 'equalto', 'user') %}{{ m.content }}{% endfor %}{{ messages|map(attribute='role')|join(',') }}{{ messages|rejectattr('role', 'eq', 'user')|list|length }}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "HiByesystem,user,assistant,user2"},
    {"{% set loop_msgs = messages[1:] if messages[0].role == 'system' else messages %}{{ loop_msgs|length }}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "3"},
    {"{{ messages[0].nope }}|{{ messages[0].nope is none }}{{ messages[0].content is none }}{{ messages[9] is defined }}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "|FalseFalseFalse"},
    {"{{ messages is iterable }}{{ messages[0] is mapping }}{{ messages[0].content is string }}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "TrueTrueTrue"},
    {"{%- for message in messages %}{{- '<|' + message['role'] + '|>\\n' + (message['content'] or '') + '\\n' }}{%- endfor %}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "<|system|>\n"
     " You are helpful. \n"
     "<|user|>\n"
     "Hi\n"
     "<|assistant|>\n"
     "\n"
     "<|user|>\n"
     "Bye\n"},
    {"{{ 'a' }}{#- multi\n"
     "line\n"
     "comment -#}   {{ 'b' }}",
     R"json({"messages": [{"content": " You are helpful. ", "role": "system"}, {"content": "Hi", "role": "user"}, {"content": null, "role": "assistant"}, {"content": "Bye", "role": "user"}]})json",
     "ab"},
};

const Golden kWhitespaceFuzz[] = {
    {"{%+ for i in [1, 2] %}{% set q = 1 %}{{ 'v' -}}  {% endfor %}{# c #}{% for i in [1, 2] %}{% if true -%}{# c #}\n"
     "\n"
     "{#- c #}{% endif %}{# c +#}{%+ set q = 1 -%}{{+ 'v' }}{% endfor %}{#+ c -#}{%- raw %}\t{{x}}\u00a0{% endraw -%}\014",
     nullptr,
     "vvvv\t{{x}}\u00a0"},
    {"  {%- raw -%}\r{{x}}\014{%+ endraw %}{%- for i in [1, 2] %}{{ 'v' }}{%- raw -%} x {{x}}a\n"
     "  {%- endraw %}{% endfor +%} x \n"
     " {{+ 'v' }}a\n"
     "  ",
     nullptr,
     "{{x}}\014vx {{x}}avx {{x}}a x \n"
     " va\n"
     "  "},
    {"{%+ if true +%}{%+ if true %}{%- raw -%}\n"
     " {{x}}\n"
     "{% endraw %}\n"
     " {%- endif -%}\u00a0{#- c #}{%+ endif +%}{{+ 'v' -}}{{ 'v' }}{% if true %}\r\n"
     "{% set q = 1 %}{# c -#}{%+ endif %}{%- set q = 1 -%}",
     nullptr,
     "{{x}}\n"
     "vv"},
    {"\014{%- if true %}{{- 'v' }}\r\n"
     "{%+ raw %}{{x}} \n"
     "{%- endraw %}{%- endif -%}{% for i in [1, 2] %}{%- raw %} \n"
     "{{x}}\n"
     " {%+ endraw %}\014{%- endfor +%}\r{{- 'v' }}\t \n"
     "\014",
     nullptr,
     "v\n"
     "{{x}} \n"
     "{{x}}\n"
     "  \n"
     "{{x}}\n"
     " v\t \n"
     "\014"},
    {"{{- 'v' -}}",
     nullptr,
     "v"},
    {"{% for i in [1, 2] +%}{% endfor +%}{% if true %}a\n"
     "  {{ 'v' -}}{% endif %}",
     nullptr,
     "a\n"
     "  v"},
    {"{% if true %}{%+ set q = 1 -%}{% endif %}{# c +#}{% if true -%}{% for i in [1, 2] -%} \n"
     "{%- endfor +%}{%+ endif +%}{% if true %}\n"
     "{# c +#}{% raw %}\n"
     "\n"
     "{{x}}\n"
     "{%+ endraw %}{#- c +#}{% endif -%}\t{# c #}{{ 'v' -}}\014",
     nullptr,
     "\n"
     "\n"
     "{{x}}\n"
     "v"},
    {"{%- set q = 1 %}{% for i in [1, 2] %}{{+ 'v' }}{%+ endfor %} x {%+ for i in [1, 2] +%}{%- for i in [1, 2] %}\n"
     "{%+ for i in [1, 2] -%}{% raw -%}\014{{x}}\n"
     "\n"
     "{% endraw %}{%+ endfor %}{%- endfor %}{% endfor +%}",
     nullptr,
     "vv x {{x}}\n"
     "\n"
     "{{x}}\n"
     "\n"
     "{{x}}\n"
     "\n"
     "{{x}}\n"
     "\n"
     "{{x}}\n"
     "\n"
     "{{x}}\n"
     "\n"
     "{{x}}\n"
     "\n"
     "{{x}}\n"
     "\n"},
    {"{#- c #}\n"
     " {%- if true -%}{% endif %}\n"
     "{% if true +%}{{+ 'v' -}}x{% endif -%}{% for i in [1, 2] %}{% endfor -%}",
     nullptr,
     "vx"},
    {"{{- 'v' -}}{{- 'v' -}}",
     nullptr,
     "vv"},
    {"\n"
     " {%- if true -%}\n"
     "\n"
     "{% endif -%}{{ 'v' }}",
     nullptr,
     "v"},
    {"{%+ for i in [1, 2] -%}{% raw -%}\n"
     " {{x}}\u3000\n"
     "{% endraw +%}{% endfor %}\n"
     "{{- 'v' }}{%- if true +%}{% endif %}a\n"
     "  {% for i in [1, 2] -%}{#- c #}{{ 'v' }}{%- endfor -%}",
     nullptr,
     "{{x}}\u3000\n"
     "{{x}}\u3000\n"
     "va\n"
     "vv"},
    {" x \n"
     "\n"
     "a\n"
     "  x{# c #}{# c #}",
     nullptr,
     " x \n"
     "\n"
     "a\n"
     "  x"},
    {"{%- if true -%}{{ 'v' }}{% endif %}{# c +#}{%+ raw %} x {{x}}\n"
     "{% endraw +%}{% raw %}\n"
     " {{x}}  {% endraw %}\r",
     nullptr,
     "v x {{x}}\n"
     "\n"
     " {{x}}  "},
    {"{{+ 'v' -}}",
     nullptr,
     "v"},
    {"{{ 'v' }}{%- for i in [1, 2] %}{%+ if true -%}{% endif -%} \n"
     "\u3000\n"
     "{{+ 'v' }}{% endfor %}{#- c -#}{%- set q = 1 %}",
     nullptr,
     "vvv"},
    {"{{+ 'v' }}",
     nullptr,
     "v"},
    {"{%+ set q = 1 -%}{%- raw -%}\u3000\n"
     "{{x}}\u3000\n"
     "{% endraw %}",
     nullptr,
     "{{x}}\u3000\n"},
    {"{%+ if true +%}\u3000\n"
     "\u3000\n"
     "{% for i in [1, 2] -%} \n"
     "  x{% endfor -%}{%+ endif %}\014{%+ set q = 1 -%}{%+ raw -%}a\n"
     "  {{x}}\r\n"
     "{% endraw -%}\r\n",
     nullptr,
     "\u3000\n"
     "\u3000\n"
     "xx\014a\n"
     "  {{x}}\n"},
    {" \n"
     "{%- raw -%}\r{{x}}  {%+ endraw +%}{%+ for i in [1, 2] %}\u00a0{% raw -%}\t{{x}} {%- endraw %}x{{- 'v' }}{%+ endfor %}{% raw -%}\u3000\n"
     "{{x}}\n"
     "{%- endraw +%}\n"
     "\u00a0 x ",
     nullptr,
     "{{x}}  \u00a0{{x}}xv\u00a0{{x}}xv{{x}}\n"
     "\u00a0 x "},
    {"{%- raw -%}\n"
     " {{x}} x {%+ endraw +%}\n"
     "\n"
     "\014{#+ c -#}{%- for i in [1, 2] %}{{ 'v' }}\r\n"
     "{#- c #}{% endfor +%}",
     nullptr,
     "{{x}} x \n"
     "\n"
     "\014vv"},
    {"{{ 'v' }} {{- 'v' }}{% set q = 1 %}\n"
     " {{+ 'v' }}{% if true +%}{%+ endif +%}",
     nullptr,
     "vv v"},
    {"\u3000\n",
     nullptr,
     "\u3000"},
    {"\t\n"
     "{# c +#} \n"
     " {%- set q = 1 %}{%+ set q = 1 %}",
     nullptr,
     "\t\n"},
    {" \n"
     "{{ 'v' -}}",
     nullptr,
     " \n"
     "v"},
    {" x ",
     nullptr,
     " x "},
    {"\r\n"
     "{% set q = 1 +%}{# c #}{% for i in [1, 2] +%} \n"
     "{{+ 'v' }}{%- endfor %}{{- 'v' -}}{{+ 'v' }} x {% raw %}\014{{x}} \n"
     "{%- endraw %}",
     nullptr,
     "\n"
     " \n"
     "v \n"
     "vvv x \014{{x}}"},
    {"{{- 'v' }}\014{% set q = 1 +%}{{ 'v' -}}",
     nullptr,
     "v\014v"},
    {"{% if true %}{%+ endif %}{% raw -%}\u3000\n"
     "{{x}}\r\n"
     "{% endraw %}{%- for i in [1, 2] +%}\u3000\n"
     "a\n"
     "  {% endfor %}",
     nullptr,
     "{{x}}\n"
     "\u3000\n"
     "a\n"
     "\u3000\n"
     "a\n"},
    {"  ",
     nullptr,
     "  "},
    {"{{ 'v' -}}{% if true +%}{{- 'v' }}{% endif -%}{#+ c #}\014\u00a0a\n"
     "  ",
     nullptr,
     "vv\014\u00a0a\n"
     "  "},
    {"{{+ 'v' }}",
     nullptr,
     "v"},
    {"  ",
     nullptr,
     "  "},
    {"{{- 'v' -}}\r\n"
     "{%+ if true +%}  \n"
     " {%+ endif -%}{% if true +%}\014 x {%- for i in [1, 2] %}{%- set q = 1 -%}{% endfor +%}{% endif %}{{- 'v' }}{%- if true %}{% endif %}",
     nullptr,
     "v  \n"
     " \014 xv"},
    {"{{+ 'v' }}\u00a0{{ 'v' -}}{# c -#}x{{- 'v' }}{{ 'v' }}",
     nullptr,
     "v\u00a0vxvv"},
    {" \n"
     "a\n"
     "  \n"
     " {# c #}",
     nullptr,
     " \n"
     "a\n"
     "  \n"},
    {"{%+ if true %}{%+ endif -%} x   \n"
     "{% for i in [1, 2] %}{# c +#}{% set q = 1 %}{%- endfor -%} \n"
     "{% if true -%}{%+ endif -%} x ",
     nullptr,
     "x   \n"
     "x "},
    {"\014{# c +#}",
     nullptr,
     ""},
    {"{%- for i in [1, 2] +%}  {%+ set q = 1 -%}{{- 'v' -}} {%+ endfor %}{% for i in [1, 2] +%}{%+ set q = 1 +%}{% endfor %}",
     nullptr,
     "  v  v"},
    {"{#- c +#}{% raw %} {{x}}\n"
     "{%+ endraw %}{#- c #} x \n"
     "\n"
     "{%+ for i in [1, 2] %}{%- endfor %}{%- for i in [1, 2] %}{%+ endfor %}",
     nullptr,
     " {{x}}\n"
     " x \n"
     "\n"},
    {"{% set q = 1 +%}{% set q = 1 +%} \n",
     nullptr,
     " "},
    {"{{ 'v' }}",
     nullptr,
     "v"},
    {"\n"
     " {% for i in [1, 2] +%} {%+ endfor -%}{%- set q = 1 %}{{- 'v' }}{# c #}\014",
     nullptr,
     "\n"
     "  v\014"},
    {"\u3000\n"
     "{%- for i in [1, 2] +%}{{ 'v' }}{{- 'v' }}{% if true -%}{# c #}{% set q = 1 -%}{% raw %}a\n"
     "  {{x}}\n"
     "{% endraw %}{% if true +%}{%- endif %}{%- endif %}{% endfor -%}{#+ c #}{# c -#}{{ 'v' }}{{- 'v' -}}a\n"
     "  x",
     nullptr,
     "vva\n"
     "  {{x}}\n"
     "vva\n"
     "  {{x}}\n"
     "vva\n"
     "  x"},
    {"{% raw -%}\u3000\n"
     "{{x}}\t{%- endraw +%}{%- raw -%}a\n"
     "  {{x}}\r{% endraw -%}",
     nullptr,
     "{{x}}a\n"
     "  {{x}}\n"},
    {"{%+ raw %}\n"
     "\n"
     "{{x}} {%- endraw -%}\r\n"
     "{% raw %}\n"
     "{{x}} x {%+ endraw +%}{# c #}{{ 'v' }}\r",
     nullptr,
     "\n"
     "\n"
     "{{x}}\n"
     "{{x}} x v"},
    {"\r{#+ c -#}{# c -#}{%+ set q = 1 %}\n"
     " ",
     nullptr,
     "\n"
     " "},
    {"{{ 'v' -}}x{{- 'v' }}",
     nullptr,
     "vxv"},
    {"{%- set q = 1 +%}",
     nullptr,
     ""},
    {"{{ 'v' }}\t \n"
     " \n"
     "{#+ c #}{# c -#}",
     nullptr,
     "v\t \n"
     " \n"},
    {"{%- if true -%}{% raw -%}\u00a0{{x}}\u3000\n"
     "{% endraw +%}\t {% endif -%}",
     nullptr,
     "{{x}}\u3000\n"
     "\t "},
    {"{%- set q = 1 -%}{% set q = 1 %}{%- if true %}{% endif %}{%- raw %}a\n"
     "  {{x}}\r\n"
     "{% endraw +%}{% for i in [1, 2] %}{{ 'v' }}{{ 'v' -}}{% if true %}{{ 'v' -}}{% endif %}\n"
     "\n"
     "{% endfor %} {% set q = 1 %}",
     nullptr,
     "a\n"
     "  {{x}}\n"
     "vvv\n"
     "vvv\n"
     " "},
    {"  {%+ for i in [1, 2] %} \n"
     "   {% endfor %}{%- for i in [1, 2] %}\r\n"
     "{%- endfor -%}{%- for i in [1, 2] +%}{%- endfor %}{% for i in [1, 2] -%}{%+ endfor %}{# c #}",
     nullptr,
     "   \n"
     " \n"},
    {"{#- c #}\014\n"
     "\n"
     "{%+ if true %}x{# c -#}{%+ if true %}{{ 'v' -}}{%- endif -%}a\n"
     "  {%- endif %}",
     nullptr,
     "\014\n"
     "\n"
     "xva"},
    {"\n"
     "\n"
     "{{ 'v' }} \r\n"
     "{#+ c -#}",
     nullptr,
     "\n"
     "\n"
     "v \n"},
    {"{{- 'v' -}}\r\n"
     "{{ 'v' -}}",
     nullptr,
     "vv"},
    {"\n"
     "{% raw -%}\r{{x}}\n"
     "\n"
     "{% endraw -%}{%- if true +%}{% if true %}{%+ endif %}{% for i in [1, 2] %}{%+ raw -%} \n"
     "{{x}}\t{% endraw -%}a\n"
     "  {%+ endfor +%}{% endif %}a\n"
     "  ",
     nullptr,
     "\n"
     "{{x}}\n"
     "\n"
     "{{x}}\ta\n"
     "  {{x}}\ta\n"
     "  a\n"
     "  "},
    {"{%+ raw -%}\n"
     " {{x}}\n"
     " {% endraw %}",
     nullptr,
     "{{x}}\n"},
    {"{{- 'v' -}}{%+ raw %}a\n"
     "  {{x}}\n"
     "\n"
     "{%- endraw +%}{{ 'v' -}}{%+ if true %}{% set q = 1 -%}{%+ raw -%}\t{{x}} {%- endraw %} \n"
     "{# c +#}{%- endif -%}{{+ 'v' }}{% for i in [1, 2] -%}{{ 'v' -}}{%- endfor +%}{{ 'v' }}{{+ 'v' -}}",
     nullptr,
     "va\n"
     "  {{x}}v{{x}} \n"
     "vvvvv"},
    {"{# c #}a\n"
     "  {%- if true -%}{% for i in [1, 2] +%}{{ 'v' }}{%+ if true %}{% endif -%}{%+ set q = 1 +%}{%- endfor %}a\n"
     "  {%+ set q = 1 %}{{- 'v' }}{%+ endif +%}{{ 'v' -}}{% for i in [1, 2] %}{%+ if true -%}\r\n"
     "{% if true %}{#- c #}{%- endif -%}{% set q = 1 %}{% endif %}{%- endfor %}{{ 'v' -}}",
     nullptr,
     "avva\n"
     "  vvv"},
    {"{%+ raw %}\t{{x}}x{%+ endraw %}{% if true -%}{{ 'v' }}{{ 'v' -}}{{+ 'v' }}{%+ endif +%}",
     nullptr,
     "\t{{x}}xvvv"},
    {"{%- if true %}{{ 'v' }}{% set q = 1 %}{%+ endif +%}{% raw %} \n"
     "{{x}}\u00a0{% endraw -%}\r \n"
     "\r\n",
     nullptr,
     "v \n"
     "{{x}}\u00a0"},
    {" {% for i in [1, 2] +%}{{+ 'v' }}x{% endfor -%} x   {%+ for i in [1, 2] %}{%+ endfor -%} \014",
     nullptr,
     "vxvxx   "},
    {"{% if true -%}{% set q = 1 %}\u3000\n"
     "{% set q = 1 %}{% set q = 1 +%}{% endif -%}",
     nullptr,
     "\u3000\n"},
    {"{% for i in [1, 2] +%}{{- 'v' }}{% endfor %}{%+ raw -%}\u3000\n"
     "{{x}}  {% endraw +%}{# c +#}{% raw %}\014{{x}} \n"
     "{% endraw %}{{ 'v' -}}",
     nullptr,
     "vv{{x}}  \014{{x}} \n"
     "v"},
    {"{% if true %}{%+ endif %}\n"
     " ",
     nullptr,
     " "},
    {"{% raw %}\r{{x}}\n"
     "{% endraw -%}{%+ set q = 1 +%}{%- set q = 1 %}{% raw %}{{x}}  {%+ endraw -%}\n"
     "\n"
     "{%- for i in [1, 2] +%}{%- set q = 1 -%}{% for i in [1, 2] %}{{ 'v' }}{% for i in [1, 2] +%}{%+ endfor +%}{%+ raw -%}\r\n"
     "{{x}} x {%- endraw %}{%- endfor +%}{%+ if true -%}{{+ 'v' -}}{% endif -%}{% endfor %}\n"
     "{% for i in [1, 2] +%}\014  {#+ c +#}\n"
     " {%+ endfor %}",
     nullptr,
     "\n"
     "{{x}}\n"
     "{{x}}  v{{x}} xv{{x}} xvv{{x}} xv{{x}} xv\014  \n"
     " \014  \n"
     " "},
    {"{# c +#}{{ 'v' -}}{%+ if true -%}{%- endif +%}{# c #}  ",
     nullptr,
     "v  "},
    {"{%+ for i in [1, 2] %}{{- 'v' }}{% raw %} {{x}}\014{%- endraw %}{% endfor -%}{#- c -#}{# c #}",
     nullptr,
     "v {{x}}v {{x}}"},
    {"\014",
     nullptr,
     "\014"},
    {"x{{+ 'v' -}}{% for i in [1, 2] %} {%+ endfor %} ",
     nullptr,
     "xv   "},
    {"{%+ if true %}{{ 'v' -}}{% set q = 1 %}\n"
     " {%+ endif %}{{ 'v' -}} {% for i in [1, 2] %}{%+ for i in [1, 2] %}{% endfor %}{%- endfor +%}{% raw -%}\r\n"
     "{{x}}\r{%- endraw +%}\014",
     nullptr,
     "v v{{x}}\014"},
    {"\n"
     " {% for i in [1, 2] %}{% endfor %}\r{% for i in [1, 2] +%}{% raw -%}{{x}}  {%+ endraw -%}{% endfor -%}\n"
     " {% raw -%}\n"
     "{{x}}\u3000\n"
     "{% endraw -%}{{ 'v' }}",
     nullptr,
     "\n"
     "{{x}}  {{x}}  {{x}}\u3000\n"
     "v"},
    {" x ",
     nullptr,
     " x "},
    {"{%- if true %}{{- 'v' }}{% if true %}{%+ endif -%}{%- endif +%}{% for i in [1, 2] %}{%- for i in [1, 2] +%}{% endfor %}{%+ endfor -%}{#+ c #}{% if true %}\r{{+ 'v' }}\n"
     "\n"
     "\n"
     "\n"
     "{% endif %}{%+ if true +%}{% raw %}\n"
     "{{x}} \n"
     "{%- endraw %}\u00a0{%- for i in [1, 2] -%}{%+ endfor %}{% endif -%}\r",
     nullptr,
     "vv\n"
     "\n"
     "\n"
     "\n"
     "\n"
     "{{x}}"},
    {"\r",
     nullptr,
     ""},
    {"{{+ 'v' -}}",
     nullptr,
     "v"},
    {"\n"
     " {% if true %}{%+ raw %} x {{x}}\t{%+ endraw +%}{# c #}{% endif %}",
     nullptr,
     "\n"
     " x {{x}}\t"},
    {" \n",
     nullptr,
     " "},
    {"\u3000\n"
     "{#+ c #}{{ 'v' -}}x\014",
     nullptr,
     "\u3000\n"
     "vx\014"},
};

const OptionsGolden kOptions[] = {
    {"{% if true %}{%+ if true +%}{% set q = 1 -%}{%- set q = 1 +%}{%+ if true %}{% set q = 1 -%}y{# c #}{% endif -%}{#+ c -#}{%- endif %}{% endif %}{%+ if true %}{% set q = 1 -%}{% raw -%}\n"
     " {{x}}\t{% endraw +%}{% endif %}{{+ 'v' -}} \n"
     "{# c #}{{ 'v' }}\r\n",
     true, false, false,
     "y{{x}}\tvv"},
    {" \n"
     "\n"
     "\n",
     true, false, true,
     " \n"
     "\n"
     "\n"},
    {"\n"
     "{{ 'v' -}}{%- for i in [1, 2] %}{#- c #}{%- endfor %}\r{% raw -%}\t{{x}}\r{%- endraw %}\n"
     "  \n"
     "{% set q = 1 +%}\n",
     true, false, true,
     "\n"
     "v{{x}}  \n"
     "\n"},
    {"{%+ for i in [1, 2] -%}x x {% for i in [1, 2] %}{%+ for i in [1, 2] %}y{#- c +#}\r\n"
     "y{% endfor %}a\n"
     "  {% if true -%}{%+ set q = 1 +%}{%- endif %}{% endfor %}{%+ endfor +%}{%+ if true %}\014{% endif %}\n"
     "\n",
     true, true, false,
     "x x y\n"
     "yy\n"
     "ya\n"
     "y\n"
     "yy\n"
     "ya\n"
     "x x y\n"
     "yy\n"
     "ya\n"
     "y\n"
     "yy\n"
     "ya\n"
     "\014"},
    {"{{ 'v' -}}{% if true %}{# c #}{%+ if true %}{%- endif -%}{%- endif -%}{% raw -%}a\n"
     "  {{x}}\r\n"
     "{% endraw -%}{%+ set q = 1 -%}{% if true %}{%+ for i in [1, 2] +%}{%+ endfor -%}{%- endif -%}\n",
     false, false, true,
     "va\n"
     "  {{x}}\n"},
    {"{%- raw %} \n"
     "{{x}}  {% endraw -%}{#+ c -#}{% if true +%}{% raw -%}\r\n"
     "{{x}}\n"
     "\n"
     "{%- endraw -%}{# c -#}{%+ endif %}{% if true %}{% if true %}{% endif %}\r\n"
     "{%- endif %}{% set q = 1 %}",
     false, false, true,
     " \n"
     "{{x}}  {{x}}"},
    {"{%+ set q = 1 -%}\u00a0{%+ for i in [1, 2] +%}{%- endfor +%}{%- for i in [1, 2] %}{%+ endfor -%}",
     false, true, true,
     ""},
    {"  {{- 'v' }}\n"
     "\n"
     "\n",
     false, false, true,
     "v\n"
     "\n"
     "\n"},
    {"x{% if true +%}{%- raw -%}x{{x}}\r{%- endraw %}\014\r{% endif %}{% set q = 1 %}{# c #}\r{% raw %}{{x}}\r{% endraw +%}\n",
     false, false, false,
     "xx{{x}}\014\n"
     "\n"
     "{{x}}\n"},
    {"\r{% for i in [1, 2] %}{{- 'v' }}a\n"
     "  {%+ endfor +%}{% if true +%}{%+ for i in [1, 2] %}{% endfor -%}\u00a0{%- set q = 1 +%}{%- endif %}{%+ for i in [1, 2] %}{{ 'v' }}{% endfor %}{% for i in [1, 2] %}\u3000\n"
     "\n"
     "{% endfor %} x \r\n"
     "\n"
     "\n",
     true, true, false,
     "\n"
     "va\n"
     "  va\n"
     "  vv\u3000\n"
     "\n"
     "\u3000\n"
     "\n"
     " x \n"
     "\n"},
    {"{% set q = 1 +%}a\n"
     "  {% if true %}{% endif %}{# c +#}{% set q = 1 %}{%+ if true %}\t\014{% endif %}{% set q = 1 %}{#+ c #}\n"
     "\n",
     false, false, false,
     "a\n"
     "  \t\014\n"},
    {"{% if true %}{%- raw %}{{x}}x{%- endraw %}{%+ endif -%}\r\n"
     "{%+ set q = 1 -%}{#+ c -#}{{- 'v' -}}{{ 'v' }}",
     true, false, false,
     "{{x}}xvv"},
    {"{% if true %}{%- if true +%}{% endif %}{% endif +%}{%- set q = 1 +%}{#- c +#}{%+ for i in [1, 2] -%}{%+ endfor %}{% if true +%}{{ 'v' }}{%+ for i in [1, 2] -%}{%- set q = 1 %}{% set q = 1 -%}{%+ endfor %}{% for i in [1, 2] %}{%- endfor %}{% endif %}\r{%+ for i in [1, 2] %}\n"
     "{%+ raw %}\r{{x}}\r{%- endraw +%}{%- set q = 1 +%}{%+ endfor +%}\n",
     true, false, true,
     "v\n"
     "{{x}}\n"
     "{{x}}\n"},
    {"{% raw %}\n"
     "{{x}}\r{%+ endraw %}{%- set q = 1 +%} \n",
     true, false, false,
     "\n"
     "{{x}}\n"
     " "},
    {"{# c #}\n",
     true, false, true,
     ""},
    {"{%- raw -%}x{{x}}\n"
     " {%- endraw +%}\014{% for i in [1, 2] +%} x {%+ endfor -%} x {%+ for i in [1, 2] %}{%- set q = 1 -%}\n"
     "{%+ for i in [1, 2] %}{% if true +%}{{ 'v' }}y\u3000\n"
     "{{+ 'v' }}{%+ endif +%}{% endfor +%}{% endfor %}\n"
     "\n",
     false, true, true,
     "x{{x}}\014 x  x x vy\u3000\n"
     "vvy\u3000\n"
     "vvy\u3000\n"
     "vvy\u3000\n"
     "v\n"
     "\n"},
    {"{{ 'v' -}}\r\n"
     "{%+ raw %}  {{x}}\n"
     " {% endraw %}  \n",
     true, false, true,
     "v  {{x}}\n"
     "   \n"},
    {"{# c #}{%+ raw %}\u00a0{{x}}\n"
     "{%+ endraw %}{% if true -%} \n"
     "{%- endif %}x",
     true, false, false,
     "\u00a0{{x}}\n"
     "x"},
    {"{#+ c #}\n"
     " {%+ if true -%}{%+ for i in [1, 2] %}\n"
     "\r{%- endfor -%} {% raw %}\u00a0{{x}}\r\n"
     "{% endraw -%}{% endif %}{% if true +%}{%+ set q = 1 +%} \n"
     "\u00a0{% if true %}{%+ endif %}{% endif -%}{%+ for i in [1, 2] %}{%+ if true %}{% raw %}\u3000\n"
     "{{x}}\t{% endraw %}{%- endif +%}{% set q = 1 %}{% for i in [1, 2] -%}\u3000\n"
     "{% endfor -%}{%+ if true %}{# c #}{% for i in [1, 2] -%}{{ 'v' }}{% endfor %}{% endif +%}{% endfor -%}\n",
     true, false, true,
     " \u00a0{{x}}\n"
     " \n"
     "\u00a0\u3000\n"
     "{{x}}\tvv\u3000\n"
     "{{x}}\tvv"},
    {"{% set q = 1 %}\r\n",
     false, true, false,
     ""},
    {"{%+ raw %} \n"
     "{{x}}\014{%- endraw -%}\n",
     false, false, false,
     " \n"
     "{{x}}"},
    {"\014\n"
     " ",
     false, true, true,
     "\014\n"
     " "},
    {"\t{%- for i in [1, 2] +%}\n"
     "{% set q = 1 %}{%+ endfor %}\r x {% for i in [1, 2] -%}{{ 'v' }}{#+ c #}\t{{ 'v' }}{% endfor -%}\n"
     "\n",
     true, false, false,
     "\n"
     "\n"
     " x v\tvv\tv"},
    {"{% set q = 1 -%}\014x\n",
     true, false, true,
     "x\n"},
    {"\n"
     " \014",
     false, false, false,
     "\n"
     " \014"},
    {"{# c -#}{{ 'v' -}}{#- c -#}{% if true %}{{ 'v' }}{% for i in [1, 2] -%}{# c #} {{ 'v' -}}{% raw %}\n"
     "{{x}}x{% endraw +%}{% endfor %}{% endif %}\r\n"
     "\n"
     "\n",
     false, true, true,
     "vv v\n"
     "{{x}}x v\n"
     "{{x}}x\n"
     "\n"
     "\n"},
    {"\n"
     "\n"
     "{%+ for i in [1, 2] +%}\u3000\n"
     "{# c #}{% endfor %}",
     true, true, true,
     "\n"
     "\n"
     "\u3000\n"
     "\u3000\n"},
    {"\n"
     "\n"
     "\r{% raw %}\n"
     " {{x}}\r\n"
     "{% endraw %}{%+ for i in [1, 2] -%}\r\n"
     "{%- for i in [1, 2] %}{% set q = 1 %}{%+ if true %}\r{#+ c +#} x {%+ endif +%}{%- for i in [1, 2] +%}\tx{% raw %} \n"
     "{{x}}\u3000\n"
     "{% endraw +%}{# c +#}{%+ endfor %}\r\n"
     "{%- endfor +%}{% set q = 1 +%}{%+ endfor %}\n",
     true, false, true,
     "\n"
     "\n"
     "\n"
     "\n"
     " {{x}}\n"
     " x \tx \n"
     "{{x}}\u3000\n"
     "\tx \n"
     "{{x}}\u3000\n"
     " x \tx \n"
     "{{x}}\u3000\n"
     "\tx \n"
     "{{x}}\u3000\n"
     " x \tx \n"
     "{{x}}\u3000\n"
     "\tx \n"
     "{{x}}\u3000\n"
     " x \tx \n"
     "{{x}}\u3000\n"
     "\tx \n"
     "{{x}}\u3000\n"},
    {"{# c -#}{{+ 'v' -}}\r\n"
     "x\u3000\n"
     "{{ 'v' }}\n",
     true, true, false,
     "vx\u3000\n"
     "v"},
    {"{% set q = 1 +%}{% for i in [1, 2] %}{{- 'v' }}{%- endfor +%}\r\n"
     "{% for i in [1, 2] -%}{% if true +%}\n"
     "\n"
     "{{ 'v' }}{%+ if true -%}{%- endif %}{%+ if true +%}{% set q = 1 -%}{% set q = 1 -%}{{- 'v' }}a\n"
     "  {%- endif %}{%+ endif -%}{% raw -%} {{x}}\r\n"
     "{%+ endraw %}x {% endfor -%}\n"
     "\n",
     false, true, true,
     "vv\n"
     "\n"
     "\n"
     "vva{{x}}\n"
     "x \n"
     "\n"
     "vva{{x}}\n"
     "x "},
    {"{{+ 'v' -}}",
     true, false, false,
     "v"},
    {"{%+ for i in [1, 2] -%}{{- 'v' -}}{% for i in [1, 2] -%}\014{%- for i in [1, 2] %}\n"
     " \n"
     "\n"
     "{% set q = 1 -%}{%- endfor -%}{%+ endfor +%}x{%+ endfor +%} \n"
     "\n"
     "\n",
     false, true, false,
     "v\n"
     " \n"
     "\n"
     "\n"
     " \n"
     "\n"
     "\n"
     " \n"
     "\n"
     "\n"
     " \n"
     "\n"
     "xv\n"
     " \n"
     "\n"
     "\n"
     " \n"
     "\n"
     "\n"
     " \n"
     "\n"
     "\n"
     " \n"
     "\n"
     "x \n"
     "\n"},
    {"{#+ c #}{%- raw %}\n"
     "{{x}}x{%+ endraw +%}{%- raw -%}\r{{x}}a\n"
     "  {%- endraw %} x {{- 'v' }}{%+ if true %}{%- endif %}{% set q = 1 +%}\n"
     "\n",
     true, false, false,
     "\n"
     "{{x}}x{{x}}a xv\n"},
    {"{%+ if true -%}{{+ 'v' }}\n"
     "\n"
     "{% endif %}  {% if true +%}{%+ endif %}{#- c #}\n"
     " {#- c #}{%+ raw -%}\n"
     "{{x}}a\n"
     "  {%- endraw %}\n"
     "\n",
     true, true, true,
     "v\n"
     "\n"
     "  {{x}}a\n"},
    {"{% set q = 1 -%}  {{ 'v' }}{% for i in [1, 2] +%}\u3000\n"
     "{% set q = 1 +%}{% endfor %}{#+ c #}\n",
     false, true, false,
     "v\u3000\n"
     "\u3000\n"},
    {"\r\n"
     "{%- for i in [1, 2] %}{# c #}\n"
     "\n"
     "x{%- endfor %}{#+ c +#}{#+ c #}{% set q = 1 -%}{%+ for i in [1, 2] %}{%- set q = 1 %}{% set q = 1 +%}{%- endfor %}\n"
     "\n"
     " \n"
     "\n"
     "\n",
     true, false, true,
     "\n"
     "x\n"
     "x\n"
     " \n"
     "\n"
     "\n"},
    {"{% raw -%} \n"
     "{{x}} \n"
     "{%- endraw %}{#- c #}",
     true, false, true,
     "{{x}}"},
    {" \n",
     true, false, false,
     " "},
    {"x{# c -#}{% for i in [1, 2] -%}\n"
     "\n"
     "{%+ set q = 1 %}{% endfor %}{{+ 'v' }}{%+ for i in [1, 2] %}{%+ if true %}{%+ for i in [1, 2] %}y{%- endfor -%}{% set q = 1 -%}{% if true +%}{{+ 'v' }}yy{% endif %}{% endif %}{% if true %}{%+ set q = 1 +%}{% raw %}\n"
     " {{x}} \n"
     "{%- endraw +%}{% endif +%}{% endfor +%}\n"
     " {%+ raw -%}\n"
     "{{x}}\t{%+ endraw +%}",
     true, false, true,
     "xvyyvyy\n"
     " {{x}}yyvyy\n"
     " {{x}}\n"
     " {{x}}\t"},
    {"{% set q = 1 %}{{ 'v' -}}",
     true, true, true,
     "v"},
};
// clang-format on

template <size_t N>
void check_golden(const Golden (&cases)[N]) {
  for (const Golden& c : cases) {
    SCOPED_TRACE(c.tmpl);
    json ctx = c.context ? json::parse(c.context) : json(nullptr);
    try {
      EXPECT_EQ(qs::jinja::render(c.tmpl, ctx), c.expected);
    } catch (const qs::Error& e) {
      ADD_FAILURE() << "threw: " << e.what();
    }
  }
}

TEST(JinjaGolden, WhitespaceControl) { check_golden(kWhitespace); }
TEST(JinjaGolden, WhitespaceControlRandomTemplates) { check_golden(kWhitespaceFuzz); }
TEST(JinjaGolden, Expressions) { check_golden(kExpressions); }
TEST(JinjaGolden, Filters) { check_golden(kFilters); }
TEST(JinjaGolden, StringDictListMethods) { check_golden(kMethods); }
TEST(JinjaGolden, StatementsLoopsMacrosScoping) { check_golden(kStatements); }

TEST(JinjaGolden, EnvironmentOptions) {
  for (const OptionsGolden& c : kOptions) {
    SCOPED_TRACE(c.tmpl);
    Options o;
    o.trim_blocks = c.trim_blocks;
    o.lstrip_blocks = c.lstrip_blocks;
    o.keep_trailing_newline = c.keep_trailing_newline;
    EXPECT_EQ(Template::parse(c.tmpl, o).render(json(nullptr)), c.expected);
  }
}

// ---- hand-written checks --------------------------------------------------------------------

std::string R(const std::string& tmpl, const json& ctx = nullptr) { return qs::jinja::render(tmpl, ctx); }

// The message of the qs::Error thrown by rendering `tmpl` ("" if none was thrown).
std::string error_of(const std::string& tmpl, const json& ctx = nullptr,
                     qs::ErrorKind* kind = nullptr) {
  try {
    qs::jinja::render(tmpl, ctx);
  } catch (const qs::Error& e) {
    if (kind) *kind = e.kind();
    return e.what();
  }
  return "";
}

TEST(Jinja, TrimBlocksAndLstripBlocks) {
  // trim_blocks removes the first newline after a block tag (not after {{ }}).
  EXPECT_EQ(R("{% if true %}\nA\n{% endif %}\nB"), "A\nB");
  EXPECT_EQ(R("{{ 'x' }}\nB"), "x\nB");
  // lstrip_blocks strips spaces and tabs before a block tag at the start of a line only.
  EXPECT_EQ(R("a\n \t {% if true %}x{% endif %}"), "a\nx");
  EXPECT_EQ(R("a  {% if true %}x{% endif %}"), "a  x");
  EXPECT_EQ(R("  {{ 'v' }}"), "  v");
  // `-` strips all whitespace including newlines; `+` disables lstrip and trim.
  EXPECT_EQ(R("a \n\n {%- if true -%} \n\n b {%- endif %}"), "ab");
  EXPECT_EQ(R("a\n  {%+ if true %}b{% endif %}"), "a\n  b");
  EXPECT_EQ(R("{% if true +%}\nb{% endif %}"), "\nb");
  // One trailing newline of the template is dropped; CRLF becomes LF.
  EXPECT_EQ(R("x\n"), "x");
  EXPECT_EQ(R("x\n\n"), "x\n");
  EXPECT_EQ(R("a\r\nb\r\n{% if true %}\r\nc{% endif %}"), "a\nb\nc");
  Options keep;
  keep.keep_trailing_newline = true;
  EXPECT_EQ(Template::parse("x\n", keep).render(json(nullptr)), "x\n");
  // Data inside values is never touched.
  EXPECT_EQ(R("{{ s }}", {{"s", "a\r\n  "}}), "a\r\n  ");
}

TEST(Jinja, UndefinedHandling) {
  EXPECT_EQ(R("[{{ x }}][{{ 'u' if x is not defined else x.y }}]"), "[][u]");
  // Like Jinja, a name after `is defined` is taken as the test's argument.
  EXPECT_NE(error_of("{{ x.y is defined if x is defined else 'u' }}"), "");
  EXPECT_EQ(R("{{ d.missing }}|{{ d.missing is defined }}|{{ d['missing'] is undefined }}", {{"d", json::object()}}),
            "|False|True");
  EXPECT_EQ(R("{{ n is none }}{{ n is defined }}{{ m is none }}", {{"n", nullptr}}), "TrueTrueFalse");
  EXPECT_EQ(R("{{ x|default('dflt') }}{{ x|length }}{% for i in x %}no{% else %}empty{% endfor %}"), "dflt0empty");
  EXPECT_EQ(R("{{ 'a' if false }}|{{ (x or 'b') ~ x }}"), "|b");
  EXPECT_EQ(error_of("{{ x.y }}"), "jinja: 'x' is undefined at line 1 col 5");
  EXPECT_EQ(error_of("\n  {{ d.a.b }}", {{"d", json::object()}}), "jinja: 'dict object' has no attribute 'a' at line 2 col 9");
  EXPECT_EQ(error_of("{{ x + 1 }}"), "jinja: 'x' is undefined at line 1 col 6");
}

TEST(Jinja, NoneVersusUndefinedAndTypes) {
  json ctx = {{"n", nullptr}, {"i", 3}, {"f", 1.0}, {"s", "x"}, {"l", {1, "a", nullptr, true, 0.5}},
              {"d", {{"k", "v"}}}};
  EXPECT_EQ(R("{{ n }}|{{ i / 2 }}|{{ i // 2 }}|{{ f }}|{{ l }}|{{ d }}", ctx),
            "None|1.5|1|1.0|[1, 'a', None, True, 0.5]|{'k': 'v'}");
  EXPECT_EQ(R("{{ 1e-05 }} {{ 0.1 }} {{ 1e16 }} {{ 1/3 }} {{ 2.0 ** 70 }}"),
            "1e-05 0.1 1e+16 0.3333333333333333 1.1805916207174113e+21");
  EXPECT_EQ(R("{{ i is integer }}{{ f is float }}{{ 1 == 1.0 }}{{ true == 1 }}", ctx), "TrueTrueTrueTrue");
}

TEST(Jinja, UnicodeIndexingAndSlicing) {
  json ctx = {{"s", "héllo wörld 日本語 😀!"}};
  EXPECT_EQ(R("{{ s|length }}|{{ s[1] }}|{{ s[-2] }}|{{ s[12:15] }}|{{ s[::-1][:3] }}|{{ s.upper() }}", ctx),
            "18|é|😀|日本語|!😀 |HÉLLO WÖRLD 日本語 😀!");
  EXPECT_EQ(R("{{ s.split(' ')[1] }}|{{ s.find('日') }}|{{ s.title() }}", ctx), "wörld|12|Héllo Wörld 日本語 😀!");
}

TEST(Jinja, NamespaceMutationInsideNestedLoops) {
  const char* t =
      "{% set ns = namespace(n=0, seen='') %}"
      "{% for i in range(3) %}{% for j in range(i) %}"
      "{% set ns.n = ns.n + 1 %}{% set ns.seen = ns.seen ~ i ~ j ~ loop.index ~ ',' %}"
      "{% endfor %}{% set local = i %}{% endfor %}{{ ns.n }}:{{ ns.seen }}:{{ local is defined }}";
  EXPECT_EQ(R(t), "3:101,201,212,:False");
}

TEST(Jinja, OrderedContextKeepsKeyOrder) {
  ordered_json ctx = ordered_json::object();
  ctx["d"] = ordered_json::object();
  ctx["d"]["b"] = 1;
  ctx["d"]["a"] = 2;
  auto t = Template::parse("{{ d|tojson }} {% for k, v in d.items() %}{{ k }}{% endfor %} {{ d }}");
  EXPECT_EQ(t.render_ordered(ctx), "{\"b\": 1, \"a\": 2} ba {'b': 1, 'a': 2}");
  json sorted = {{"d", {{"b", 1}, {"a", 2}}}};  // nlohmann::json keeps keys sorted
  EXPECT_EQ(t.render(sorted), "{\"a\": 2, \"b\": 1} ab {'a': 2, 'b': 1}");
}

TEST(Jinja, RaiseExceptionMessageIsExact) {
  qs::ErrorKind kind = qs::ErrorKind::Internal;
  EXPECT_EQ(error_of("{% if true %}{{ raise_exception('Conversation roles must alternate') }}{% endif %}", nullptr, &kind),
            "Conversation roles must alternate");
  EXPECT_EQ(kind, qs::ErrorKind::Invalid);
  EXPECT_EQ(error_of("{% macro m() %}{{ raise_exception('in ' ~ 'macro') }}{% endmacro %}{{ m() }}"), "in macro");
}

TEST(Jinja, UnsupportedConstructsNameTheConstructAndPosition) {
  struct {
    const char* tmpl;
    const char* msg;
  } cases[] = {
      {"{% extends 'base.html' %}", "unsupported Jinja construct 'extends' at line 1 col 4"},
      {"a\n  {% include 'x.j2' %}", "unsupported Jinja construct 'include' at line 2 col 6"},
      {"{% import 'm' as m %}", "unsupported Jinja construct 'import' at line 1 col 4"},
      {"{% from 'm' import x %}", "unsupported Jinja construct 'from' at line 1 col 4"},
      {"{% block body %}{% endblock %}", "unsupported Jinja construct 'block' at line 1 col 4"},
      {"{% for x in y recursive %}{% endfor %}", "unsupported Jinja construct 'recursive for loop' at line 1 col 15"},
      {"{{ xs|groupby('a') }}", "unsupported Jinja construct 'filter groupby' at line 1 col 7"},
      {"{{ f(*args) }}", "unsupported Jinja construct '* arguments' at line 1 col 6"},
      {"{% do x.append(1) %}", "unsupported Jinja construct 'do' at line 1 col 4"},
      {"{{ cycler(1, 2) }}", "unsupported Jinja construct 'global cycler' at line 1 col 10"},
  };
  for (const auto& c : cases) {
    qs::ErrorKind kind = qs::ErrorKind::Internal;
    EXPECT_EQ(error_of(c.tmpl, nullptr, &kind), c.msg) << c.tmpl;
    EXPECT_EQ(kind, qs::ErrorKind::Unsupported) << c.tmpl;
  }
}

TEST(Jinja, SyntaxAndRuntimeErrorsHaveLineAndColumn) {
  EXPECT_EQ(error_of("{% if x %}\n{{ 1 + }}\n{% endif %}"), "jinja: unexpected end of print statement at line 2 col 8");
  EXPECT_EQ(error_of("{% if x %}"), "jinja: unexpected end of template, expected 'elif' or 'else' or 'endif' at line 1 col 11");
  EXPECT_EQ(error_of("{% endfor %}"), "jinja: unknown tag 'endfor' at line 1 col 4");
  EXPECT_EQ(error_of("{% break %}"), "jinja: 'break' outside of a loop at line 1 col 4");
  EXPECT_EQ(error_of("{{ x|nosuch }}"), "jinja: no filter named 'nosuch' at line 1 col 6");
  EXPECT_EQ(error_of("{{ x is nosuch }}"), "jinja: no test named 'nosuch' at line 1 col 9");
  EXPECT_EQ(error_of("{# open"), "jinja: missing end of comment tag at line 1 col 1");
  EXPECT_EQ(error_of("{{ 'a' + 1 }}"), "jinja: can only concatenate str (not \"int\") to str at line 1 col 8");
  EXPECT_EQ(error_of("{{ [1].append(2) }}"), "jinja: access to attribute 'append' of 'list' object is unsafe. at line 1 col 14");
  EXPECT_EQ(error_of("{% set x = 1 %}{% set x.y = 2 %}"), "jinja: cannot assign attribute on non-namespace object at line 1 col 23");
  EXPECT_EQ(error_of("{{ 1 // 0 }}"), "jinja: integer division or modulo by zero at line 1 col 6");
  EXPECT_EQ(error_of("{{ [1]|select|length }}"), "jinja: object of type 'generator' has no len() at line 1 col 15");
  EXPECT_EQ(error_of("{{ x|tojson }}"), "jinja: Object of type Undefined is not JSON serializable at line 1 col 6");
}

TEST(Jinja, GeneratorsBehaveLikePython) {
  // select/map/... return one-shot generators: always truthy, no len(); |list materialises.
  EXPECT_EQ(R("{% if [0]|select %}T{% endif %}{{ [1, 2]|select|list|length }}{{ [3, 4]|map('string')|join }}"), "T234");
  EXPECT_EQ(R("{{ {'a': 1}.items() }} {{ {'a': 1}.keys()|list }}"), "dict_items([('a', 1)]) ['a']");
}

TEST(Jinja, StrftimeNowFormatsCurrentTime) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  std::string year = std::to_string(1900 + tm.tm_year);
  std::string got = R("{{ strftime_now('%Y') }}");
  EXPECT_TRUE(got == year || got == std::to_string(1901 + tm.tm_year)) << got;
}

TEST(Jinja, TemplateIsReusableAndThreadSafe) {
  Template empty;
  EXPECT_EQ(empty.render(json::object()), "");
  auto t = Template::parse(
      "{% set ns = namespace(s=0) %}{% for x in xs %}{% set ns.s = ns.s + x %}{% endfor %}{{ ns.s }}");
  std::vector<std::thread> threads;
  std::vector<std::string> results(4);
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&, k] {
      for (int rep = 0; rep < 50; ++rep) results[size_t(k)] = t.render(json{{"xs", {k, 1, 2}}});
    });
  for (auto& th : threads) th.join();
  for (int k = 0; k < 4; ++k) EXPECT_EQ(results[size_t(k)], std::to_string(k + 3));
}

TEST(Jinja, DeepNestingIsAnErrorNotACrash) {
  std::string deep = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  EXPECT_NE(error_of(deep).find("nested too deeply"), std::string::npos);
  EXPECT_EQ(R("{{ " + std::string(40, '(') + "1" + std::string(40, ')') + " }}"), "1");
}

// A context nested 100000 deep (built in place) is an error, not a stack overflow while it is
// converted; 200 levels still render.
json nested(int depth) {
  json d = 1;
  for (int k = 0; k < depth; ++k) {
    json o = json::array();
    o.push_back(std::move(d));
    d = std::move(o);
  }
  return d;
}

TEST(Jinja, DeepContextIsAnErrorNotACrash) {
  json ctx = json::object();
  ctx["x"] = nested(100000);
  EXPECT_NE(error_of("{{ x|length }}", ctx).find("nested deeper than 200 levels"), std::string::npos);
  ctx["x"] = nested(199);
  EXPECT_EQ(R("{{ x|length }}", ctx), "1");
}

TEST(Jinja, RecursionIsBounded) {
  qs::ErrorKind kind;
  std::string msg = error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", nullptr, &kind);
  EXPECT_NE(msg.find("maximum recursion depth exceeded"), std::string::npos) << msg;
}

}  // namespace
