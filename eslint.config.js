// Lint rules. Besides typescript-eslint's recommended set, this enforces the layer rule of
// docs/architecture.md: a lower layer never imports a higher one, and only the CLI prints.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

/** Layers from the bottom up; each may import only itself and the layers before it. */
const LAYERS = [
  'core',
  'identity',
  'store',
  'chain',
  'bank',
  'staking',
  'net',
  'inference',
  'experts',
  'governance',
  'arena',
  'fl',
  'directory',
  'wallet',
  'api',
  'node',
  'cli',
]

function layerRule(layer) {
  const higher = LAYERS.slice(LAYERS.indexOf(layer) + 1)
  return {
    files: [`src/${layer}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: higher.map((h) => ({
            group: [`../${h}/*`, `../../${h}/*`, `../${h}`, `../../${h}`],
            message: `src/${layer} is below src/${h} and must not import it (see docs/architecture.md)`,
          })),
        },
      ],
    },
  }
}

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'coverage/', 'test-artifacts/', 'web/dist/', '.tools/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', Buffer: 'readonly', console: 'readonly', URL: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      eqeqeq: 'error',
    },
  },
  { files: ['src/**/*.ts'], ignores: ['src/cli/**'], rules: { 'no-console': 'error' } },
  ...LAYERS.map(layerRule),
)
