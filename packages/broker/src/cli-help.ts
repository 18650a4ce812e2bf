import { CONFIG_FIELDS, effectiveConfig, flagName, type Field } from './config.js';
import { ALERT_DEFAULTS, resolveBrokerOptions, type BrokerOptions } from './options.js';

/**
 * The help texts of the `relaymq` commands, generated from the tables the
 * parsers read (the broker's {@link CONFIG_FIELDS}, each command's
 * {@link CommandOption}s) and from the resolved defaults, so an option
 * cannot be accepted without being listed, nor listed with a stale default.
 */

/** One option of a command other than `broker`: the parser and `--help` both read it. */
export interface CommandOption {
  /** Long flag name, without `--`. */
  name: string;
  /** The value's placeholder; unset: a boolean flag. */
  value?: string;
  short?: string;
  help: string;
  /** The default, as parsed; also shown by `--help`. */
  default?: string;
  /** How `--help` states a default the parser does not apply itself. */
  defaultText?: string;
}

/** `node:util` parseArgs options of a command table. */
export function parseArgsOptions(table: readonly CommandOption[]): Record<string, { type: 'string' | 'boolean'; short?: string; default?: string }> {
  return Object.fromEntries(
    table.map((o) => [o.name, { type: o.value === undefined ? ('boolean' as const) : ('string' as const), ...(o.short === undefined ? {} : { short: o.short }), ...(o.default === undefined ? {} : { default: o.default }) }]),
  );
}

/** Options every command takes. */
export const HELP_OPTION: CommandOption = { name: 'help', short: 'h', help: 'show this help' };

const COLUMN = 40;

/** `  --flag <value>   help (default x)`, one line per option (the help on the next line when the flag is long). */
function line(flag: string, help: string, defaultText: string | undefined): string {
  const text = defaultText === undefined ? help : `${help} (default ${defaultText})`;
  const left = `  ${flag}`;
  return left.length < COLUMN ? `${left.padEnd(COLUMN)}${text}` : `${left}\n${' '.repeat(COLUMN)}${text}`;
}

/** The options of a command table, as `--help` lists them. */
export function renderOptions(table: readonly CommandOption[]): string {
  return table
    .map((o) => {
      const flag = `${o.short === undefined ? '' : `-${o.short}, `}--${o.name}${o.value === undefined ? '' : ` ${o.value}`}`;
      return line(flag, o.help, o.defaultText ?? o.default);
    })
    .join('\n');
}

function placeholder(field: Field): string {
  if (field.value !== undefined) return field.value;
  switch (field.kind) {
    case 'integer':
      return /Ms$/.test(field.path) ? '<ms>' : /Bytes$/.test(field.path) ? '<bytes>' : '<n>';
    case 'list':
      return '<a,b,...>';
    case 'json':
      return '<json>';
    case 'string':
      return '<text>';
  }
}

const MIB = 1024 * 1024;

function formatDefault(field: Field, value: unknown): string {
  if (field.defaultText !== undefined) return field.defaultText;
  if (value === undefined || (Array.isArray(value) && value.length === 0) || (typeof value === 'object' && value !== null && Object.keys(value).length === 0)) return 'none';
  if (typeof value === 'number' && value >= MIB && value % MIB === 0) return `${value} = ${value / MIB} MiB`;
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? String(value) : JSON.stringify(value);
}

function valueAt(config: Record<string, unknown>, path: string): unknown {
  return path.split('.').reduce<unknown>((node, key) => (typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[key] : undefined), config);
}

/** Every broker option with its flag, placeholder, meaning and default, by section. */
export function brokerOptionsHelp(cliDefaults: BrokerOptions): string {
  // The defaults as the broker resolves them; alert defaults apply once webhooks are given.
  const defaults = { ...effectiveConfig(resolveBrokerOptions(cliDefaults)), alerts: { ...ALERT_DEFAULTS } };
  const out: string[] = [];
  let section = '';
  for (const field of CONFIG_FIELDS) {
    if (field.section !== section) {
      section = field.section;
      out.push('', `${section}:`);
    }
    const aliases = (field.aliases ?? []).map((a) => `, --${a}`).join('');
    out.push(line(`--${flagName(field.path)}${aliases} ${placeholder(field)}`, field.help, formatDefault(field, valueAt(defaults, field.path))));
  }
  return out.join('\n');
}
