-- A real editor client for tests/lsp.rs: Neovim (headless) opens WVFLOW_FILE with
-- `wvflow lsp` attached, waits for the diagnostics it publishes, and writes them to
-- WVFLOW_OUT, one per line: line:column:code:message (0-based, as Neovim stores them).
local client = vim.lsp.start_client({
  name = 'wvflow',
  cmd = { os.getenv('WVFLOW_BIN'), 'lsp' },
  root_dir = os.getenv('WVFLOW_ROOT'),
})
vim.cmd('edit ' .. vim.fn.fnameescape(os.getenv('WVFLOW_FILE')))
vim.lsp.buf_attach_client(0, client)
vim.wait(15000, function() return #vim.diagnostic.get(0) > 0 end, 50)
local out = {}
for _, d in ipairs(vim.diagnostic.get(0)) do
  local code = d.code or (d.user_data and d.user_data.lsp and d.user_data.lsp.code) or ''
  local message = d.message:gsub('\n', ' ')
  table.insert(out, string.format('%d:%d:%s:%s', d.lnum, d.col, code, message))
end
vim.fn.writefile(out, os.getenv('WVFLOW_OUT'))
vim.cmd('qa!')
