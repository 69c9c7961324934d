-- podcap.lua: podcap's workload identity as Wireshark fields (a post-dissector).
--
--   podcap.node, podcap.namespace, podcap.pod, podcap.container
--       the capture's workload, read from the interface description podcap writes
--       (Inspektor Gadget's form: k8s.node=...;k8s.namespace=...;k8s.podName=...;
--       k8s.containerName=..., values URL-escaped), so a merged group file filters by member;
--   podcap.peer
--       the other side of the packet: the destination of what the workload sent, the source
--       of what it received (the direction podcap writes into each packet's flags), by the
--       name the file's Name Resolution Blocks give it (with name resolution on; else its
--       address).
--
-- Installed by `podcap extcap install` into Wireshark's personal plugins folder; by hand: copy
-- it into the "Personal Lua Plugins" folder `tshark -G folders` prints, or load it for one run
-- with `tshark -X lua_script:podcap.lua`.

local podcap = Proto("podcap", "podcap workload")
local fields = {
  node = ProtoField.string("podcap.node", "Node"),
  namespace = ProtoField.string("podcap.namespace", "Namespace"),
  pod = ProtoField.string("podcap.pod", "Pod"),
  container = ProtoField.string("podcap.container", "Container"),
  peer = ProtoField.string("podcap.peer", "Peer"),
}
podcap.fields = {fields.node, fields.namespace, fields.pod, fields.container, fields.peer}

local description = Field.new("frame.interface_description")
local direction = Field.new("frame.packet_flags_direction")
local ends = {
  {Field.new("ip.src_host"), Field.new("ip.dst_host")},
  {Field.new("ipv6.src_host"), Field.new("ipv6.dst_host")},
}
local keys = {["k8s.node"] = "node", ["k8s.namespace"] = "namespace",
              ["k8s.podName"] = "pod", ["k8s.containerName"] = "container"}

local function unescape(text)
  return (text:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

-- One interface description is parsed once, not once per packet.
local parsed = {}
local function identity(text)
  local found = parsed[text]
  if found == nil then
    found = {}
    for key, value in text:gmatch("([^;=]+)=([^;]*)") do
      if keys[key] then found[keys[key]] = unescape(value) end
    end
    parsed[text] = found
  end
  return found
end

local function peer()
  local dir = direction()
  if dir == nil then return nil end
  for _, pair in ipairs(ends) do
    local src, dst = pair[1](), pair[2]()
    if src ~= nil and dst ~= nil then
      if dir.value == 2 then return dst.value end
      if dir.value == 1 then return src.value end
    end
  end
  return nil
end

function podcap.dissector(_, pinfo, tree)
  local desc = description()
  local who = desc and identity(desc.value) or {}
  local other = peer()
  if next(who) == nil and other == nil then return end
  local subtree = tree:add(podcap, "podcap")
  for _, key in ipairs({"node", "namespace", "pod", "container"}) do
    if who[key] and who[key] ~= "" then subtree:add(fields[key], who[key]) end
  end
  if other then subtree:add(fields.peer, other) end
end

register_postdissector(podcap)
